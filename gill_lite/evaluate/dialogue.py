"""Dialogue-conditioned generation (the paper's VisDial experiment): generate the image a Q/A dialogue is about.

At ``tiny``/``ci`` the dialogues are ShapeStories Q/A rounds (`gill_lite.world.dialogue`), drawn past the
indices the LM stand-in reads in pretraining; at ``paper`` they come from VisDial v1.0 val
(`gill_lite.evaluate.visdial.load_visdial`). GILL reads the Q/A text with ``[IMG]`` forced; the baseline
is the generator on the same text (truncated by its tokenizer).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .contexts import dialogue_text
from .vist import GenerationResults, generate_and_score


@dataclass
class DialogueItem:
    """A dialogue to evaluate: its text, the true image, and (ShapeStories, one object) its shape."""

    id: str
    text: str
    image: np.ndarray
    shape: object | None = None
    known: list[str] | None = None


def world_dialogue_items(profile, n: int | None = None) -> list[DialogueItem]:
    """``n`` ShapeStories dialogues that the LM stand-in never read: indices from ``world.n_dialogues`` on
    (`gill_lite.world.text.lm_pretraining_texts` reads indices ``0..n_dialogues-1`` of the same stream)."""
    from gill_lite.world.dialogue import make_dialogues
    from gill_lite.world.render import render_scene

    from .visdial import world_dialogue_known

    n = profile.eval.n_stories if n is None else n
    skip = profile.world.n_dialogues
    dialogues = make_dialogues(skip + n, profile.world.seed, profile.world.image_size)[skip:]
    items = []
    for d in dialogues:
        single = len(d.scene.shapes) == 1  # the probe reads one object; two-object scenes get CLIP only
        items.append(DialogueItem(
            d.id, dialogue_text(d.turns), render_scene(d.scene, profile.world.image_size),
            d.scene.main if single else None, world_dialogue_known(d) if single else None,
        ))
    return items


def visdial_items(dialogs, images_dir, image_size: int | None = None) -> tuple[list[DialogueItem], list[dict]]:
    """VisDial dialogs as items; a missing or unreadable image is skipped and reported, never replaced."""
    from gill_lite.data.formats import load_image

    items, skipped = [], []
    for d in dialogs:
        path = d.image_path(images_dir)
        try:
            image = load_image(path, image_size)
        except (OSError, ValueError) as e:  # the error names the file
            skipped.append({"id": str(d.image_id), "reason": str(e)})
            continue
        items.append(DialogueItem(str(d.image_id), d.text, image))
    return items, skipped


def evaluate_dialogues(pipe, eval_clip, items, seed: int = 0, batch_size: int = 32, n_examples: int = 4,
                       progress: bool = True) -> GenerationResults:
    """GILL and the generator baseline, each given the dialogue text, scored against the true image."""
    if not items:
        raise ValueError("no dialogues to evaluate")
    texts = [i.text for i in items]
    shapes = [i.shape for i in items]
    return generate_and_score(
        pipe, eval_clip, {"gill/dialogue": [[t] for t in texts], "sd/dialogue": texts},
        np.stack([i.image for i in items]), [i.id for i in items],
        shapes if any(s is not None for s in shapes) else None, seed, batch_size,
        n_examples=n_examples, progress=progress, desc="dialogue generation",
    )


def dialogue_ceiling(items) -> dict[str, dict[str, float]]:
    """What the Q/A rounds of the probed dialogues state, in the form of `gill_lite.evaluate.vist.ceilings`:
    ``determined`` (share of dialogues stating each attribute) and ``best_expected`` (guessing the rest)."""
    from gill_lite.world.attributes import ATTRIBUTES, VALUES

    known = [set(i.known) for i in items if i.known is not None]
    if not known:
        return {}
    det = {a: float(np.mean([a in k for k in known])) for a in ATTRIBUTES}
    det["all"] = float(np.mean([len(k) == len(ATTRIBUTES) for k in known]))
    guess = lambda a, k: 1.0 if a in k else 1 / len(VALUES[a])  # noqa: E731
    best = {a: float(np.mean([guess(a, k) for k in known])) for a in ATTRIBUTES}
    best["all"] = float(np.mean([np.prod([guess(a, k) for a in ATTRIBUTES]) for k in known]))
    return {"determined": det, "best_expected": best}


def dialogue_items(profile, n: int | None = None) -> tuple[list[DialogueItem], list[dict]]:
    """The profile's dialogues: ShapeStories Q/A (tiny, ci) or VisDial v1.0 val (paper), and the skipped ones."""
    n = profile.eval.n_stories if n is None else n
    if profile.uses_world:
        return world_dialogue_items(profile, n), []
    from .visdial import load_visdial

    if not profile.data.visdial_json:
        raise ValueError("profile.data.visdial_json must name the VisDial v1.0 val JSON")
    path = profile.resolve(profile.data.visdial_json)
    images = profile.data.visdial_images or str(Path(profile.data.visdial_json).parent / "VisualDialog_val2018")
    images_dir = profile.resolve(images)
    items, skipped = visdial_items(load_visdial(path)[:n], images_dir, 256)
    return items, skipped


def dialogue_summary(results: GenerationResults, items, n_boot: int = 1000, seed: int = 0) -> dict:
    """`GenerationResults.summary` plus the dialogues' information ceiling, shaped like the VIST summary."""
    return {"generation": results.summary(n_boot, seed), "ceilings": {"dialogue": dialogue_ceiling(items)},
            "counts": {"dialogues": len(items)}}
