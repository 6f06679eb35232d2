"""Show one image for a set of ``[IMG]`` states: the decision head picks, and ONLY the chosen path runs.

The published code always ran Stable Diffusion and then threw the image away when retrieval won; here the
generator is called only when the decision is "generate" (a test holds it to that).
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def show_image(model, parts, index, states, seed: int = 0, image_of: Callable[[str], np.ndarray] | None = None) -> dict:
    """Decide, then retrieve or generate, for ONE query's [IMG] states ((8, d), (1, 8, d) or `ImgStates`).

    Returns ``dict(choice, probabilities, image, retrieved_id)``: ``choice`` is "generate" or "retrieve",
    ``probabilities`` ``{"generate": p, "retrieve": q}``; ``image`` is the generated image, or
    ``image_of(retrieved_id)`` for a retrieval (None without ``image_of``); ``retrieved_id`` is None when
    generating. ``parts`` needs ``.generator`` only when generating; ``index`` is a `RetrievalIndex`.
    """
    from gill_lite.inference import decide, generate_images, retrieve

    probabilities = decide(model, states)
    if isinstance(probabilities, list):
        raise ValueError(f"show_image takes one query's states, got {len(probabilities)}")
    if probabilities["retrieve"] > probabilities["generate"]:
        retrieved_id, _score = retrieve(model, index, states, k=1)[0][0]
        image = image_of(retrieved_id) if image_of is not None else None
        return {"choice": "retrieve", "probabilities": probabilities, "image": image, "retrieved_id": retrieved_id}
    image = np.asarray(generate_images(model, parts.generator, states, seed=seed))[0]
    return {"choice": "generate", "probabilities": probabilities, "image": image, "retrieved_id": None}
