"""The captioned corpus (the CC3M stand-in), with attribute combinations held out of training.

Splits:
  train, val, test -- combinations seen in training (val/test are fresh renders of them);
  heldout          -- only the held-out combinations (novel compositions), never read by a training stage.
Each example is drawn from its own seed ``(world seed, split, index)``, so an example does not depend on how
many others are drawn and the same seed gives byte-identical data.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .attributes import ATTRIBUTES, Scene, Shape, all_shapes
from .captions import caption_scene
from .render import random_jitter, render_scene

SPLITS = ("train", "val", "test", "heldout")
# Seed streams: every consumer of randomness in the world owns one; a test checks they never collide.
SPLIT_STREAM = {"train": 1, "val": 2, "test": 3, "heldout": 4}


@dataclass(frozen=True)
class Example:
    """One captioned image of the corpus."""

    id: str
    split: str
    scene: Scene
    caption: str

    def image(self, image_size: int = 32) -> np.ndarray:
        return render_scene(self.scene, image_size)

    @property
    def shape(self) -> Shape:
        return self.scene.main


@lru_cache(maxsize=16)
def heldout_shapes(seed: int = 0, fraction: float = 0.15) -> frozenset[Shape]:
    """The combinations never shown in training: a seeded ``fraction`` of all 216, chosen so that every
    single attribute value, and every (kind, colour) pair, still appears in training."""
    rng = np.random.default_rng([seed, 99])
    shapes = all_shapes()
    order = rng.permutation(len(shapes))
    target = int(round(fraction * len(shapes)))
    held: set[Shape] = set()
    for i in order:
        if len(held) == target:
            break
        candidate = shapes[i]
        remaining = [s for s in shapes if s not in held and s != candidate]
        pairs_left = {(s.kind, s.colour) for s in remaining}
        if (candidate.kind, candidate.colour) not in pairs_left:
            continue
        if all(getattr(candidate, a) in {getattr(s, a) for s in remaining} for a in ATTRIBUTES):
            held.add(candidate)
    return frozenset(held)


def train_shapes(seed: int = 0, fraction: float = 0.15) -> list[Shape]:
    held = heldout_shapes(seed, fraction)
    return [s for s in all_shapes() if s not in held]


def make_example(split: str, index: int, seed: int = 0, fraction: float = 0.15, image_size: int = 32) -> Example:
    """The ``index``-th example of ``split``; single-object scenes (the generator's targets)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    rng = np.random.default_rng([seed, SPLIT_STREAM[split], index])
    pool = sorted(heldout_shapes(seed, fraction)) if split == "heldout" else train_shapes(seed, fraction)
    shape = pool[int(rng.integers(len(pool)))]
    scene = Scene((shape,), (random_jitter(rng, image_size),))
    return Example(id=f"{split}-{index:06d}", split=split, scene=scene, caption=caption_scene(scene, rng))


def make_split(split: str, n: int, seed: int = 0, fraction: float = 0.15, image_size: int = 32) -> list[Example]:
    """``n`` examples of a split (see module docstring)."""
    return [make_example(split, i, seed, fraction, image_size) for i in range(n)]


def split_sizes(world) -> dict[str, int]:
    """Sizes of the corpus splits for a `WorldConfig`."""
    return {"train": world.n_train, "val": world.n_val, "test": world.n_test, "heldout": world.n_heldout}


def make_corpus(world) -> dict[str, list[Example]]:
    """All corpus splits for a `gill_lite.config.WorldConfig`."""
    return {
        split: make_split(split, n, world.seed, world.heldout_fraction, world.image_size)
        for split, n in split_sizes(world).items()
    }


def render_images(examples: list[Example], image_size: int = 32) -> np.ndarray:
    """Stack the images of ``examples`` as ``(n, H, W, 3)`` uint8."""
    return np.stack([e.image(image_size) for e in examples]) if examples else np.zeros((0, image_size, image_size, 3), np.uint8)
