"""5-frame stories of one persistent character (the VIST stand-in), with a known information structure.

Frame 1's caption describes the character fully ("A small red circle sits at the top left."). Each later
frame applies one event, and its caption says what happened:

    explicit   move_to ("It slides to the middle."), move_rel ("It moves down."), grow, shrink, resize
               ("It changes size."), recolour ("It turns blue."), reveal ("Now the large blue circle is ...")
    image-only recolour_hidden ("It changes colour."), move_hidden ("It moves."): the new value is only
               visible in the image; they happen in frames 2-4 only.

So the last caption alone is ambiguous ("It moves down."), the five captions determine more (but not what an
image-only event changed), and the five captions plus the first four images determine the final frame
completely (every explicit event is determined given the previous state). `Story.known` records, per setting,
which attributes of the final frame's main shape are determined; it is computed by propagating the set of
values each attribute could take through the events (`_infer`), not asserted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .attributes import (ATTRIBUTES, COLOURS, DIRECTIONS, POSITIONS, SIZES, VALUES, Scene, Shape, all_shapes,
                         shifted_position)
from .captions import SINGLE_TEMPLATES, WHERE, caption_shape
from .render import random_jitter, render_scene
from .streams import stream_id

N_FRAMES = 5
SETTINGS = ("last_caption", "captions", "captions_images")
STORY_STREAMS = {"eval": "stories/eval", "lm": "stories/lm"}

TEMPLATES = {  # event -> caption templates; "It ..." templates may say "The circle ..." instead
    "move_to": ("It slides to the {position}.", "It travels to the {position}.", "Next it sits {where}."),
    "move_rel": ("It moves {direction}.", "It steps {direction}.", "It moves one step {direction}."),
    "grow": ("It grows.", "It gets bigger.", "It becomes large."),
    "shrink": ("It shrinks.", "It gets smaller.", "It becomes small."),
    "resize": ("It changes size.", "Its size changes."),
    "recolour": ("It turns {colour}.", "It becomes {colour}.", "Its colour changes to {colour}."),
    "reveal": ("Now the {size} {colour} {kind} is {where}.", "It ends up {where} as a {size} {colour} {kind}."),
    "recolour_hidden": ("It changes colour.", "Its colour changes.", "It takes on a new colour."),
    "move_hidden": ("It moves.", "It goes somewhere else.", "It wanders off."),
}
IMAGE_ONLY = ("recolour_hidden", "move_hidden")
# Event weights in frames 2-4 and in frame 5 (image-only events never end a story).
MIDDLE_WEIGHTS = {
    "move_to": 0.14, "move_rel": 0.16, "grow": 0.08, "shrink": 0.08, "resize": 0.04, "recolour": 0.12,
    "reveal": 0.03, "recolour_hidden": 0.18, "move_hidden": 0.17,
}
LAST_WEIGHTS = {
    "move_to": 0.14, "move_rel": 0.34, "grow": 0.10, "shrink": 0.10, "resize": 0.08, "recolour": 0.14,
    "reveal": 0.10,
}
SUBJECT_THE_KIND = 0.25  # chance an "It ..." caption names the kind instead ("The circle moves down.")


@dataclass(frozen=True)
class Story:
    """Five frames of one character. ``known[setting]`` lists the final shape's determined attributes."""

    id: str
    frames: list[Scene]
    captions: list[str]
    events: list[str]
    known: dict[str, list[str]] = field(default_factory=dict)

    def images(self, image_size: int = 32) -> np.ndarray:
        """The five frames as ``(5, H, W, 3)`` uint8."""
        return np.stack([render_scene(f, image_size) for f in self.frames])

    @property
    def final(self) -> Shape:
        return self.frames[-1].main

    @property
    def text(self) -> str:
        """The five captions as one paragraph (how the LM stand-in reads a story)."""
        return " ".join(self.captions)

    def to_dict(self) -> dict:
        return {"id": self.id, "frames": [f.to_dict() for f in self.frames], "captions": list(self.captions),
                "events": list(self.events), "known": {k: list(v) for k, v in self.known.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "Story":
        return cls(d["id"], [Scene.from_dict(f) for f in d["frames"]], list(d["captions"]), list(d["events"]),
                   {k: list(v) for k, v in d["known"].items()})


# ---------------------------------------------------------------------------------------------- events
def _valid_events(shape: Shape, weights: dict[str, float]) -> list[str]:
    valid = []
    for event in weights:
        if event == "grow" and shape.size != "small":
            continue
        if event == "shrink" and shape.size != "large":
            continue
        valid.append(event)
    return valid


def _apply(shape: Shape, event: str, rng: np.random.Generator) -> tuple[Shape, dict]:
    """The next state after ``event`` and the event's parameters (what its caption may say)."""
    other = lambda values, current: [v for v in values if v != current]  # noqa: E731
    if event in ("move_to", "move_hidden", "reveal"):
        position = other(POSITIONS, shape.position)[int(rng.integers(8))]
        return shape.replace(position=position), {"position": position}
    if event == "move_rel":
        options = [d for d in DIRECTIONS if shifted_position(shape.position, d)]
        direction = options[int(rng.integers(len(options)))]
        return shape.replace(position=shifted_position(shape.position, direction)), {"direction": direction}
    if event in ("grow", "shrink", "resize"):
        return shape.replace(size=other(SIZES, shape.size)[0]), {}
    if event in ("recolour", "recolour_hidden"):
        colour = other(COLOURS, shape.colour)[int(rng.integers(3))]
        return shape.replace(colour=colour), {"colour": colour}
    raise ValueError(f"unknown event {event!r}")


def _caption(shape: Shape, event: str, params: dict, rng: np.random.Generator) -> tuple[str, bool]:
    """Caption of the frame after ``event`` (``shape`` is the new state) and whether it names the kind."""
    templates = TEMPLATES[event]
    text = templates[int(rng.integers(len(templates)))]
    names_kind = "{kind}" in text
    if text.startswith("It ") and rng.random() < SUBJECT_THE_KIND:
        text, names_kind = "The {kind} " + text[3:], True
    fields = {**shape.to_dict(), "where": WHERE[shape.position], **params}
    return text.format(**fields), names_kind


# --------------------------------------------------------------------------------------------- reasoning
Belief = dict  # attribute -> frozenset of values still possible


def _unknown() -> Belief:
    return {a: frozenset(VALUES[a]) for a in ATTRIBUTES}


def _exact(shape: Shape) -> Belief:
    return {a: frozenset([getattr(shape, a)]) for a in ATTRIBUTES}


def _infer(belief: Belief, event: str, params: dict, names_kind: bool, kind: str) -> Belief:
    """What a reader knows after reading an event's caption, given what it knew before.

    Each attribute's set of possible values is pushed through the event; ``kind`` (the character's kind,
    which never changes) is used only when the caption names it.
    """
    b = dict(belief)
    if names_kind:
        b["kind"] = frozenset([kind])
    if event in ("move_to", "reveal"):
        b["position"] = frozenset([params["position"]])
    elif event == "move_rel":
        b["position"] = frozenset(p for p in (shifted_position(q, params["direction"]) for q in b["position"]) if p)
    elif event == "move_hidden":
        b["position"] = frozenset(p for p in POSITIONS if any(p != q for q in b["position"]))
    elif event == "grow":
        b["size"] = frozenset(["large"]) if "small" in b["size"] else frozenset()
    elif event == "shrink":
        b["size"] = frozenset(["small"]) if "large" in b["size"] else frozenset()
    elif event == "resize":
        b["size"] = frozenset(s for s in SIZES if any(s != q for q in b["size"]))
    elif event == "recolour":
        b["colour"] = frozenset([params["colour"]])
    elif event == "recolour_hidden":
        b["colour"] = frozenset(c for c in COLOURS if any(c != q for q in b["colour"]))
    if event == "reveal":  # its caption names every attribute
        b.update({a: frozenset([params[a]]) for a in ("kind", "colour", "size")})
    return b


def _determined(belief: Belief) -> list[str]:
    return [a for a in ATTRIBUTES if len(belief[a]) == 1]


# ---------------------------------------------------------------------------------------------- stories
def make_story(index: int, seed: int = 0, stream: str = "eval", image_size: int = 32, n_frames: int = N_FRAMES) -> Story:
    """The ``index``-th story of a stream, drawn from its own seed ``(seed, stream id, index)``.

    ``n_frames`` other than 5 is for the LM stand-in's pretraining only (`lm_story_frames`): the evaluation
    stories, like VIST's, have five. Only the last event's weights depend on ``n_frames``, so a story's frames
    before its last are those of the same story told longer."""
    if stream not in STORY_STREAMS:
        raise ValueError(f"unknown story stream {stream!r}; expected one of {tuple(STORY_STREAMS)}")
    if n_frames < 2:
        raise ValueError(f"a story needs at least 2 frames (a start and an event), got n_frames={n_frames}")
    rng = np.random.default_rng([seed, stream_id(STORY_STREAMS[stream]), index])
    shapes = all_shapes()
    shape = shapes[int(rng.integers(len(shapes)))]
    states, captions, events, steps = [shape], [caption_shape(shape, int(rng.integers(len(SINGLE_TEMPLATES))))], ["start"], []
    for frame in range(1, n_frames):
        weights = LAST_WEIGHTS if frame == n_frames - 1 else MIDDLE_WEIGHTS
        valid = _valid_events(shape, weights)
        p = np.array([weights[e] for e in valid])
        event = valid[int(rng.choice(len(valid), p=p / p.sum()))]
        shape, params = _apply(shape, event, rng)
        if event == "reveal":
            params = {**shape.to_dict()}
        caption, names_kind = _caption(shape, event, params, rng)
        states.append(shape)
        captions.append(caption)
        events.append(event)
        steps.append((event, params, names_kind))
    kind = states[0].kind
    belief = _exact(states[0])  # the first caption describes the character fully
    for step in steps:
        belief = _infer(belief, *step, kind)
    known = {
        "last_caption": _determined(_infer(_unknown(), *steps[-1], kind)),
        "captions": _determined(belief),
        "captions_images": _determined(_infer(_exact(states[-2]), *steps[-1], kind)),
    }
    frames = [Scene((s,), (random_jitter(rng, image_size),)) for s in states]
    return Story(id=f"{stream}-{index:06d}", frames=frames, captions=captions, events=events, known=known)


def make_stories(n: int, seed: int = 0, stream: str = "eval", image_size: int = 32) -> list[Story]:
    """``n`` five-frame stories of ``stream`` ("eval": evaluation only; "lm": the LM stand-in's pretraining)."""
    return [make_story(i, seed, stream, image_size) for i in range(n)]


def lm_story_frames(n: int, seed: int, frames: tuple[int, int]) -> list[int]:
    """How many frames each of the LM stand-in's first ``n`` stories has: uniform in ``frames`` (inclusive),
    each from its own seed ``(seed, "stories/length" stream, index)``.

    Web text tells stories of every length; an LM that only ever read five-frame stories knows that a story's
    fifth event sentence ends it: the tiny LM stand-in so trained put 0.46 of its next-token mass on ``</s>`` or a
    question after an evaluation story's five captions, 0.002 after its first four
    (`gill_lite.evaluate.chain.lm_end_mass_by_captions_read`), and GILL's ``[IMG]`` tokens after a story follow
    that state."""
    lo, hi = frames
    if not 2 <= lo <= hi:
        raise ValueError(f"story frames must satisfy 2 <= low <= high, got {frames}")
    return [int(np.random.default_rng([seed, stream_id("stories/length"), i]).integers(lo, hi + 1)) for i in range(n)]


def make_lm_stories(n: int, seed: int, image_size: int, frames: tuple[int, int]) -> list[Story]:
    """The LM stand-in's ``n`` "lm"-stream stories, of `lm_story_frames` lengths (its recipe's ``story_frames``)."""
    return [make_story(i, seed, "lm", image_size, k) for i, k in enumerate(lm_story_frames(n, seed, frames))]


def information_ceiling(stories: list[Story]) -> dict[str, dict[str, float]]:
    """Per setting, the share of final-frame attributes the inputs determine (and the share of stories where
    all four are determined): the best score any model can reach from that input, if it reasons perfectly."""
    out = {}
    for setting in SETTINGS:
        shares = {a: float(np.mean([a in s.known[setting] for s in stories])) for a in ATTRIBUTES}
        shares["all"] = float(np.mean([len(s.known[setting]) == len(ATTRIBUTES) for s in stories]))
        out[setting] = shares
    return out


def story_vocabulary_texts() -> list[str]:
    """Every template string of the story captions (for `text.world_vocabulary`)."""
    return [t for ts in TEMPLATES.values() for t in ts] + ["The {kind}"] + list(DIRECTIONS)
