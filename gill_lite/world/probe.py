"""A rule-based attribute probe: read kind, colour, size and position of an image's main object.

It scores generated images exactly, beside CLIP similarity. Steps, each chosen to survive noisy or blurry
generated images:
  1. foreground = brightest channel above a threshold (the background is black);
  2. keep the largest 8-connected blob (specks of noise and a smaller second object are ignored);
  3. colour = the PALETTE entry whose direction is closest to the blob's mean colour (anti-aliased edges are
     darker versions of the same colour, so direction, not distance, is what matters);
  4. position = the 3x3 cell of the blob's centroid; size = blob area against the small/large midpoint;
  5. kind = the outline (circle, square, triangle), drawn with the renderer at the measured centroid and area,
     whose coverage map is closest to the observed coverage.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .attributes import ATTRIBUTES, KINDS, PALETTE, SIZES, Shape, cell_position
from .render import SIZE_RADIUS, SUPERSAMPLE, _draw

THRESHOLD = 90  # brightest channel above this = foreground (palette colours peak at 200-240)
_PALETTE_NAMES = tuple(PALETTE)
_PALETTE = np.array([PALETTE[c] for c in _PALETTE_NAMES], dtype=np.float64)
# Area (as a share of the image) of each kind at each size, measured on the renderer; the size threshold is
# the geometric mean of the largest small area and the smallest large area.
_AREA_SCALE = {"circle": np.pi, "square": 4 * 0.88**2, "triangle": 1.8 * 1.1**2}  # area / r^2
_SMALL_MAX = max(_AREA_SCALE.values()) * SIZE_RADIUS["small"] ** 2
_LARGE_MIN = min(_AREA_SCALE.values()) * SIZE_RADIUS["large"] ** 2
SIZE_AREA_THRESHOLD = float(np.sqrt(_SMALL_MAX * _LARGE_MIN))


def _largest_blob(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (label propagation: no scipy needed)."""
    h, w = mask.shape
    labels = np.where(mask, np.arange(h * w).reshape(h, w) + 1, 0)
    big = h * w + 1
    while True:
        padded = np.pad(np.where(mask, labels, big), 1, constant_values=big)
        neighbours = [padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        new = np.where(mask, np.minimum.reduce(neighbours), 0)
        if np.array_equal(new, labels):
            break
        labels = new
    ids, counts = np.unique(labels[mask], return_counts=True)
    return labels == ids[np.argmax(counts)]


def _coverage(kind: str, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    """Coverage in [0, 1] of a ``kind`` outline drawn as the renderer draws it (supersampled, box-filtered)."""
    big = size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big))
    _draw(ImageDraw.Draw(canvas), Shape(kind, "red", "small", "middle"), cx * SUPERSAMPLE, cy * SUPERSAMPLE, r * SUPERSAMPLE)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64)[..., 0] / PALETTE["red"][0]


def _kind(coverage: np.ndarray, area: float, cx: float, cy: float) -> str:
    size = coverage.shape[0]
    errors = {}
    for kind in KINDS:
        r = np.sqrt(area / _AREA_SCALE[kind])
        # the triangle's centroid sits 0.2 h below the point the renderer draws it around
        dy = 0.2 * 1.1 * r if kind == "triangle" else 0.0
        errors[kind] = min(
            float(np.abs(_coverage(kind, cx + ox, cy - dy + oy, r, size) - coverage).sum())
            for ox in (-0.25, 0.0, 0.25) for oy in (-0.25, 0.0, 0.25)
        )
    return min(errors, key=errors.get)


def probe_image(image: np.ndarray, threshold: int = THRESHOLD) -> Shape | None:
    """The attributes of the largest object in ``image`` (uint8 ``(H, W, 3)``), or None if nothing is drawn."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
        raise ValueError(f"expected a square (H, H, 3) image, got shape {image.shape}")
    img = image.astype(np.float64)
    h, w = img.shape[:2]
    mask = img.max(axis=2) > threshold
    if mask.sum() < 2:
        return None
    blob = _largest_blob(mask)
    mean = img[blob].mean(axis=0)
    direction = _PALETTE / np.linalg.norm(_PALETTE, axis=1, keepdims=True)
    ci = int(np.argmax(direction @ (mean / (np.linalg.norm(mean) + 1e-9))))
    colour = _PALETTE_NAMES[ci]
    # Coverage: each pixel's brightness along the colour's direction, near the blob only.
    near = _largest_blob_dilated(blob)
    coverage = np.clip(img @ _PALETTE[ci] / (_PALETTE[ci] @ _PALETTE[ci]), 0.0, 1.0) * near
    area = float(coverage.sum())
    ys, xs = np.mgrid[0:h, 0:w]
    cx = float((coverage * (xs + 0.5)).sum() / area)
    cy = float((coverage * (ys + 0.5)).sum() / area)
    position = cell_position(min(int(cy * 3 / h), 2), min(int(cx * 3 / w), 2))
    size = SIZES[1] if area / (h * w) > SIZE_AREA_THRESHOLD else SIZES[0]
    return Shape(_kind(coverage, area, cx, cy), colour, size, position)


def _largest_blob_dilated(blob: np.ndarray) -> np.ndarray:
    """The blob grown by one pixel, so its anti-aliased rim counts towards coverage."""
    padded = np.pad(blob, 1)
    h, w = blob.shape
    return np.logical_or.reduce([padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)])


def attribute_accuracy(images, shapes: list[Shape]) -> dict[str, float]:
    """Share of images whose probed kind/colour/size/position (and all four) match ``shapes``.

    An unreadable image (nothing drawn) counts as wrong on every attribute.
    """
    if len(images) != len(shapes):
        raise ValueError(f"{len(images)} images but {len(shapes)} shapes")
    if not len(shapes):
        raise ValueError("attribute_accuracy needs at least one image")
    hits = {a: 0 for a in ATTRIBUTES}
    hits["all"] = 0
    for image, truth in zip(images, shapes):
        found = probe_image(image)
        if found is None:
            continue
        ok = [getattr(found, a) == getattr(truth, a) for a in ATTRIBUTES]
        for a, good in zip(ATTRIBUTES, ok):
            hits[a] += good
        hits["all"] += all(ok)
    return {k: v / len(shapes) for k, v in hits.items()}
