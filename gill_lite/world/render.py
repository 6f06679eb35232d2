"""Draw scenes as small RGB images (black background, anti-aliased shapes)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .attributes import PALETTE, Scene, Shape, position_cell

SUPERSAMPLE = 4  # draw 4x larger, then box-filter down: smooth edges, still deterministic
SIZE_RADIUS = {"small": 0.10, "large": 0.19}  # shape half-extent as a fraction of the image side


def shape_centre(shape: Shape, image_size: int, jitter: tuple[int, int] = (0, 0)) -> tuple[float, float]:
    """Pixel (x, y) of a shape's centre: the middle of its 3x3 cell plus jitter."""
    row, col = position_cell(shape.position)
    cell = image_size / 3
    return (col + 0.5) * cell + jitter[0], (row + 0.5) * cell + jitter[1]


def _draw(draw: ImageDraw.ImageDraw, shape: Shape, cx: float, cy: float, r: float):
    colour = PALETTE[shape.colour]
    if shape.kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape.kind == "square":
        s = r * 0.88  # same visual area class as the circle
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=colour)
    elif shape.kind == "triangle":
        h = r * 1.1
        draw.polygon([(cx, cy - h), (cx + h, cy + h * 0.8), (cx - h, cy + h * 0.8)], fill=colour)
    else:  # Shape validates kinds; this guards future additions
        raise ValueError(f"cannot draw kind {shape.kind!r}")


def render_scene(scene: Scene, image_size: int = 32) -> np.ndarray:
    """Render a scene to a ``(image_size, image_size, 3)`` uint8 array."""
    big = image_size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    jitters = scene.jitter or tuple((0, 0) for _ in scene.shapes)
    for shape, jitter in zip(scene.shapes, jitters):
        cx, cy = shape_centre(shape, image_size, jitter)
        r = SIZE_RADIUS[shape.size] * image_size
        _draw(draw, shape, cx * SUPERSAMPLE, cy * SUPERSAMPLE, r * SUPERSAMPLE)
    return np.asarray(canvas.resize((image_size, image_size), Image.Resampling.BOX), dtype=np.uint8)


def render_shape(shape: Shape, image_size: int = 32, jitter: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Render a single shape (convenience for `render_scene`)."""
    return render_scene(Scene((shape,), (jitter,)), image_size)


def random_jitter(rng: np.random.Generator, image_size: int) -> tuple[int, int]:
    """Small integer offset of a shape's centre, proportional to the image size (±1 px at 32 px)."""
    j = max(1, image_size // 32)
    return int(rng.integers(-j, j + 1)), int(rng.integers(-j, j + 1))
