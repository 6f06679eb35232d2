"""Narrated stories: how the LM stand-in reads a character's story, as a web-trained LM reads narratives.

Web text that tells a story also says, now and then, what things look like *now* ("The cat is on the mat
again."), and people ask and answer questions about the current scene. That is what makes a web-trained LM
track a scene's state: its next-token prediction needs it. ``Story.text`` alone never needs it (each event
sentence is predictable without knowing the scene), so the LM stand-in reads "lm"-stream stories narrated:

- after an event, with probability ``RESTATE_P``, a restatement of the character's current state, in the corpus
  caption templates ("There is a large blue circle in the middle.") or a narrator's form ("Now it is ...");
  after an image-only event it reveals the new value, as a picture would;
- at the end, with probability ``ASK_P``, one or two questions about the final scene, answered truly.

Only "lm"-stream stories are narrated (the evaluation stories are never read by any training), no image and no
``[IMG]`` token appears, and the restatements use the same words as every other world text. The randomness of
the narration has a stream of its own (``stories/narration``), so the stories themselves are the same as
``make_lm_stories`` (2 to 8 frames in the LM stand-in's recipe, as web stories vary in length).
"""
from __future__ import annotations

import numpy as np

from .attributes import Shape
from .captions import SINGLE_TEMPLATES, WHERE, caption_shape
from .dialogue import format_turn
from .stories import Story
from .streams import stream_id

RESTATE_P = 0.5
ASK_P = 0.5
NARRATOR_TEMPLATES = (
    "Now it is a {size} {colour} {kind} {where}.",
    "Now the {size} {colour} {kind} is {where}.",
    "The {kind} is now {size} and {colour}, {where}.",
)
NOW_QUESTIONS = {  # attribute -> (question, answer) about the current scene
    "colour": ("what colour is the {kind} now?", "it is {colour}."),
    "position": ("where is the {kind} now?", "it is {where}."),
    "size": ("how big is the {kind} now?", "it is {size}."),
    "kind": ("what shape is it?", "it is a {kind}."),
}


def restatement(shape: Shape, rng: np.random.Generator) -> str:
    """The character's current state in a corpus caption template or a narrator's template."""
    i = int(rng.integers(len(SINGLE_TEMPLATES) + len(NARRATOR_TEMPLATES)))
    if i < len(SINGLE_TEMPLATES):
        return caption_shape(shape, i)
    return NARRATOR_TEMPLATES[i - len(SINGLE_TEMPLATES)].format(where=WHERE[shape.position], **shape.to_dict())


def narrate(story: Story, rng: np.random.Generator) -> str:
    """A story's captions with restatements after events and questions at the end (see module docstring)."""
    sentences = [story.captions[0]]
    for caption, frame in zip(story.captions[1:], story.frames[1:]):
        sentences.append(caption)
        if rng.random() < RESTATE_P:
            sentences.append(restatement(frame.main, rng))
    text = " ".join(sentences)
    if rng.random() < ASK_P:
        final = story.final
        fields = {**final.to_dict(), "where": WHERE[final.position]}
        asked = rng.permutation(list(NOW_QUESTIONS))[: int(rng.integers(1, 3))]
        text += "\n" + "\n".join(format_turn(*(t.format(**fields) for t in NOW_QUESTIONS[a])) for a in asked)
    return text


def narrated_stories(stories: list[Story], seed: int = 0) -> list[str]:
    """Narrations of "lm"-stream stories, each from its own seed ``(seed, narration stream, index)``."""
    if any(not s.id.startswith("lm-") for s in stories):
        raise ValueError("only 'lm'-stream stories are narrated for the LM's pretraining")
    return [narrate(s, np.random.default_rng([seed, stream_id("stories/narration"), i])) for i, s in enumerate(stories)]


def narration_vocabulary_texts() -> list[str]:
    """Every template string the narration adds (for `text.world_vocabulary`)."""
    return list(NARRATOR_TEMPLATES) + [t for qa in NOW_QUESTIONS.values() for t in qa]
