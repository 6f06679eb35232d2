"""Reading evaluation images from disk: errors are raised, never papered over with a blank image."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def load_image(path, size: int | None = None) -> np.ndarray:
    """An image file as uint8 (H, W, 3) RGB, optionally resized (shorter side) and centre-cropped to ``size``.

    Raises FileNotFoundError for a missing file and ValueError for one PIL cannot decode.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"cannot decode image {path}: {e}") from e
    if size is not None:
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
    return np.asarray(im, dtype=np.uint8)
