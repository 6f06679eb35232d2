"""Decision prompts (the PartiPrompts stand-in): caption-like prompts for the generate-or-retrieve set.

A "corpus" prompt asks for an attribute combination seen in training, so a retrieved training image can match
it exactly (retrieval should win); a "novel" prompt asks for a held-out combination, which no training image
shows (generation should win). Each prompt is drawn from its own seed ``(seed, "prompts" stream, index)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attributes import Shape
from .captions import SINGLE_TEMPLATES, WHERE, caption_shape
from .corpus import heldout_shapes, train_shapes
from .streams import stream_id

CATEGORIES = ("corpus", "novel")
# Prompt-style wordings on top of the caption templates (PartiPrompts read like requests for a picture).
PROMPT_TEMPLATES = (
    "A picture of a {size} {colour} {kind} {where}.",
    "An image showing a {size} {colour} {kind} {where}.",
    "Show me a {size} {colour} {kind} {where}.",
    "A drawing of a {colour} {kind}, {size}, {where}.",
)


@dataclass(frozen=True)
class DecisionPrompt:
    """A prompt, the shape it asks for (the judges' ground truth) and its category ("corpus" or "novel")."""

    id: str
    text: str
    shape: Shape
    category: str


def prompt_text(shape: Shape, rng: np.random.Generator) -> str:
    """A prompt for ``shape`` in one of the caption or prompt wordings."""
    i = int(rng.integers(len(SINGLE_TEMPLATES) + len(PROMPT_TEMPLATES)))
    if i < len(SINGLE_TEMPLATES):
        return caption_shape(shape, i)
    return PROMPT_TEMPLATES[i - len(SINGLE_TEMPLATES)].format(where=WHERE[shape.position], **shape.to_dict())


def make_decision_prompts(n: int = 1600, seed: int = 0, fraction: float = 0.15, novel_share: float = 0.5) -> list[DecisionPrompt]:
    """``n`` prompts; a ``novel_share`` of them ask for held-out combinations (``heldout_shapes(seed, fraction)``)."""
    held = sorted(heldout_shapes(seed, fraction))
    seen = train_shapes(seed, fraction)
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, stream_id("prompts"), i])
        category = "novel" if rng.random() < novel_share else "corpus"
        pool = held if category == "novel" else seen
        shape = pool[int(rng.integers(len(pool)))]
        out.append(DecisionPrompt(f"prompt-{i:06d}", prompt_text(shape, rng), shape, category))
    return out
