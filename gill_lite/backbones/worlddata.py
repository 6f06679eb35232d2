"""Training data of the stand-in backbones, drawn from the ShapeStories world.

Two sources:
  * the corpus train split (what the image-encoder CLIP reads, as GILL's image encoder plays CLIP's role on
    CC3M-like data), grouped by attribute combination;
  * the *world grid*: every one of the 216 combinations at every jitter offset, captioned with every single-
    object template. The generator and the evaluation CLIP read it, as Stable Diffusion and ViT-L/14 were
    trained on far more than CC3M: they can draw and judge the combinations GILL's corpus holds out.
    It is enumerated, not sampled, so it shares no seed stream with anything.
Contrastive batches hold distinct combinations where possible: two captions of the same combination in one
batch would be false negatives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gill_lite.world.attributes import Shape, all_shapes
from gill_lite.world.captions import SINGLE_TEMPLATES, caption_shape
from gill_lite.world.render import render_shape


@dataclass
class ShapeData:
    """Images and captions grouped by attribute combination.

    ``images[i]``: uint8 (n_i, H, W, 3) renders of ``shapes[i]``; ``captions[i]``: list of its captions.
    For the grid, any caption goes with any image of the same combination; for the corpus, captions are
    paired with images (``paired=True``).
    """

    shapes: list[Shape]
    images: list[np.ndarray]
    captions: list[list[str]]
    paired: bool

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[str], list[Shape]]:
        """``size`` (image, caption) pairs, each combination at most once while ``size <= len(shapes)``."""
        order = np.concatenate([rng.permutation(len(self.shapes)) for _ in range(-(-size // len(self.shapes)))])[:size]
        images, captions = [], []
        for i in order:
            j = int(rng.integers(len(self.images[i])))
            images.append(self.images[i][j])
            captions.append(self.captions[i][j] if self.paired else self.captions[i][int(rng.integers(len(self.captions[i])))])
        return np.stack(images), captions, [self.shapes[i] for i in order]


def jitter_offsets(image_size: int) -> list[tuple[int, int]]:
    """Every jitter `gill_lite.world.render.random_jitter` can draw."""
    j = max(1, image_size // 32)
    return [(dx, dy) for dx in range(-j, j + 1) for dy in range(-j, j + 1)]


def world_grid(image_size: int = 32) -> ShapeData:
    """All 216 combinations x every jitter, with every single-object caption template."""
    shapes = all_shapes()
    offsets = jitter_offsets(image_size)
    images = [np.stack([render_shape(s, image_size, o) for o in offsets]) for s in shapes]
    captions = [[caption_shape(s, t) for t in range(len(SINGLE_TEMPLATES))] for s in shapes]
    return ShapeData(shapes, images, captions, paired=False)


def corpus_groups(examples, image_size: int = 32) -> ShapeData:
    """Corpus examples (single-object) grouped by their main shape, images rendered once."""
    groups: dict[Shape, list] = {}
    for e in examples:
        groups.setdefault(e.shape, []).append(e)
    shapes = sorted(groups)
    images = [np.stack([e.image(image_size) for e in groups[s]]) for s in shapes]
    captions = [[e.caption for e in groups[s]] for s in shapes]
    return ShapeData(shapes, images, captions, paired=True)


def to_unit_tensor(images):
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1] (the generator's pixel space)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
