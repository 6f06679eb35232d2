"""Q/A dialogue about a scene, in the paper's format (``Q: what colour is the circle?\\nA: it is red.``).

The LM stand-in reads these in pretraining (as OPT read dialogue on the web), and the dialogue notebook uses
`make_dialogue` to ask about images. Questions refer to an object by its kind, or by colour and kind when two
objects share a kind.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attributes import COLOURS, SIZES, Scene, Shape, all_shapes
from .captions import WHERE, caption_scene, noun_phrase
from .render import random_jitter
from .streams import stream_id

QUESTIONS = {  # question kind -> (question templates, answer template)
    "colour": (("what colour is the {ref}?", "which colour does the {ref} have?"), "it is {colour}."),
    "kind": (("what shape is the {colour} one?", "what kind of shape is the {colour} one?"), "it is a {kind}."),
    "where": (("where is the {ref}?", "where is the {ref} in the picture?"), "it is {where}."),
    "size": (("how big is the {ref}?", "is the {ref} small or large?"), "it is {size}."),
    "is_colour": (("is the {ref} {guess}?",), "{yesno}, it is {colour}."),
    "is_size": (("is the {ref} {guess}?",), "{yesno}, it is {size}."),
}
SCENE_QUESTIONS = {
    "count": (("how many shapes are there?", "how many objects can you see?"), "there {count}."),
    "describe": (("what is in the picture?", "what do you see?", "describe the picture."), "{description}."),
}
COUNTS = {1: "is one", 2: "are two"}


@dataclass(frozen=True)
class Dialogue:
    """A scene, its caption and a few Q/A turns about it."""

    id: str
    scene: Scene
    caption: str
    turns: list[tuple[str, str]]

    @property
    def text(self) -> str:
        """The caption followed by the turns, one ``Q: ...`` / ``A: ...`` line each."""
        return "\n".join([self.caption] + [format_turn(q, a) for q, a in self.turns])


def format_turn(question: str, answer: str) -> str:
    return f"Q: {question}\nA: {answer}"


def _ref(shape: Shape, scene: Scene) -> str:
    """How to refer to ``shape`` unambiguously within ``scene``."""
    same_kind = [s for s in scene.shapes if s.kind == shape.kind]
    return shape.kind if len(same_kind) == 1 else f"{shape.colour} {shape.kind}"


def _pick(options, rng):
    return options[int(rng.integers(len(options)))]


def make_dialogue(scene: Scene, rng: np.random.Generator, n_turns: int = 3) -> list[tuple[str, str]]:
    """``n_turns`` (question, answer) pairs about ``scene``, all answered from its ground truth."""
    turns = []
    for _ in range(n_turns):
        if rng.random() < 0.15:
            name = _pick(tuple(SCENE_QUESTIONS), rng)
            questions, answer = SCENE_QUESTIONS[name]
            description = " and ".join(noun_phrase(s) for s in scene.shapes)
            turns.append((_pick(questions, rng), answer.format(count=COUNTS[len(scene.shapes)], description=description)))
            continue
        shape = _pick(scene.shapes, rng)
        name = _pick(tuple(QUESTIONS), rng)
        if name == "kind" and sum(s.colour == shape.colour for s in scene.shapes) > 1:
            name = "colour"  # "the red one" would be ambiguous
        questions, answer = QUESTIONS[name]
        values = COLOURS if name == "is_colour" else SIZES
        guess = _pick(values, rng)
        truth = shape.colour if name == "is_colour" else shape.size
        fields = {**shape.to_dict(), "ref": _ref(shape, scene), "where": WHERE[shape.position], "guess": guess,
                  "yesno": "yes" if guess == truth else "no"}
        turns.append((_pick(questions, rng).format(**fields), answer.format(**fields)))
    return turns


def make_dialogues(n: int, seed: int = 0, image_size: int = 32) -> list[Dialogue]:
    """``n`` dialogues, each from its own seed ``(seed, "dialogue" stream, index)``; a third show two objects."""
    shapes = all_shapes()
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, stream_id("dialogue"), i])
        first = _pick(shapes, rng)
        chosen = [first]
        if rng.random() < 0.33:
            chosen.append(_pick([s for s in shapes if s.position != first.position], rng))
        scene = Scene(tuple(chosen), tuple(random_jitter(rng, image_size) for _ in chosen))
        caption = caption_scene(scene, rng)
        out.append(Dialogue(f"dialogue-{i:06d}", scene, caption, make_dialogue(scene, rng, int(rng.integers(2, 5)))))
    return out


def dialogue_vocabulary_texts() -> list[str]:
    """Every template string the dialogues use (for `text.world_vocabulary`)."""
    texts = ["Q: A:", "yes no"] + list(COUNTS.values())
    for questions, answer in list(QUESTIONS.values()) + list(SCENE_QUESTIONS.values()):
        texts += list(questions) + [answer]
    return texts
