"""Captions from several templates with varied word order, so no model can memorise one sentence form."""
from __future__ import annotations

import numpy as np

from .attributes import DIRECTIONS, Scene, Shape, shifted_position

WHERE = {  # position -> prepositional phrase
    "top left": "at the top left", "top": "at the top", "top right": "at the top right",
    "left": "on the left", "middle": "in the middle", "right": "on the right",
    "bottom left": "at the bottom left", "bottom": "at the bottom", "bottom right": "at the bottom right",
}

SINGLE_TEMPLATES = (
    "a {size} {colour} {kind} {where}.",
    "there is a {size} {colour} {kind} {where}.",
    "{where} is a {size} {colour} {kind}.",
    "a {colour} {kind} {where}, {size}.",
    "a {size} {colour} {kind} sits {where}.",
    "{where} we see a {size} {colour} {kind}.",
)
# The forms the [IMG] side of GILL's corpus (the CC3M stand-in, `gill_lite.train.data.world_caption_set`) reads
# besides the ones above: several sentences, pronouns, an attribute per sentence, as real CC3M captions vary, so
# GILL's [IMG] states and mapper learn from text whose scene is spread over sentences, as a story's is, and (the
# last six) from captions that say what a shape does, in the world's only verbs of change (the vocabulary is
# closed, so they are the verbs the LM's narrated stories and the evaluation stories use too; no story text is
# read, each form describes one image). The two step forms name where the shape started and the step that brought
# it where the image shows it: without them the mapper had never read a position that must be worked out, and
# drew it right after 5 captions ending in such a step 0.25 of the time (0.71 after "It slides to ..."; 0.48 and
# 0.92 with them, `bench/chain.py`: `chain.captions.mapper.position.after_<event>`). The LM stand-in's
# pretraining text, the captioning loss and the generator's targets keep the captions above. Measured effect of
# each step: README, "Does GILL use the story?".
STYLE_TEMPLATES = (
    "a {kind} {where}. It is {size} and {colour}.",
    "there is a {colour} {kind}. It is {size}, {where}.",
    "a {size} {kind} sits {where}. It is {colour}.",
    "a {size} {colour} {kind}. It is {where}.",
    "{where} there is a {kind}. It is {colour} and {size}.",
    "there is a {kind}. It is {colour}. It is {size}. It is {where}.",
    "a {colour} shape. It is a {kind}. It is {where}. It is {size}.",
    "a {size} shape {where}. It is a {colour} {kind}.",
    "the {kind} is {where}. The {kind} is {size}. It is {colour}.",
    # one action each; the image shows where the action ends, as in CC3M's "a dog runs to the ball"
    "a {size} {colour} {kind}. It slides to the {position}.",
    "a {colour} {kind} {where}. It becomes {size}.",
    "a {size} {kind} {where}. It turns {colour}.",
    "the {size} {colour} {kind} travels to the {position}.",
    # a step from where it was ({start}) to where the image shows it, as in a story's "It moves down."
    "a {size} {colour} {kind} {start}. It moves {direction}.",
    "a {colour} {kind} {start}. It is {size}. It steps {direction}.",
)
RESTYLE_P = 0.75  # the share of single-object captions rewritten (0.5 before the four action forms)
PAIR_TEMPLATES = (
    "{a} and {b}.",
    "{a}, next to {b}.",
)


def noun_phrase(shape: Shape, with_where: bool = True) -> str:
    """'a small red circle at the top left'."""
    phrase = f"a {shape.size} {shape.colour} {shape.kind}"
    return f"{phrase} {WHERE[shape.position]}" if with_where else phrase


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def caption_shape(shape: Shape, template: int) -> str:
    """Caption one shape with template number ``template`` (0..len(SINGLE_TEMPLATES)-1)."""
    text = SINGLE_TEMPLATES[template].format(where=WHERE[shape.position], **shape.to_dict())
    return _capitalise(text)


def restyle_caption(shape: Shape, rng: np.random.Generator) -> str | None:
    """With probability `RESTYLE_P`, ``shape`` described in one of the `STYLE_TEMPLATES`; else None.

    A step form starts one grid step away from ``shape.position``, drawn among the steps that stay on the grid."""
    if rng.random() >= RESTYLE_P:
        return None
    text = STYLE_TEMPLATES[int(rng.integers(len(STYLE_TEMPLATES)))]
    step = {}
    if "{direction}" in text:  # the step that ends where ``shape`` is
        options = [d for d in DIRECTIONS if shifted_position(shape.position, d, -1)]
        direction = options[int(rng.integers(len(options)))]
        step = {"direction": direction, "start": WHERE[shifted_position(shape.position, direction, -1)]}
    return _capitalise(text.format(where=WHERE[shape.position], **step, **shape.to_dict()))


def caption_scene(scene: Scene, rng: np.random.Generator) -> str:
    """A caption for a scene, with a template drawn from ``rng``."""
    if len(scene.shapes) == 1:
        return caption_shape(scene.main, int(rng.integers(len(SINGLE_TEMPLATES))))
    a, b = (noun_phrase(s) for s in scene.shapes)
    return _capitalise(PAIR_TEMPLATES[int(rng.integers(len(PAIR_TEMPLATES)))].format(a=a, b=b))
