"""The whole VIST evaluation in one call: generation, retrieval, ceilings, counts, skipped stories.

Used by notebook 06, ``gill-lite eval vist`` and ``bench/vist.py``; returns plain JSON-ready dicts.
"""
from __future__ import annotations

import time

from .vist import ceilings, evaluate_generation, evaluate_retrieval


def evaluate_vist(pipe, stories, eval_cfg, skipped=(), batch_size: int = 32, progress: bool = True,
                  oracle: bool = True):
    """Run both VIST protocols on ``stories`` (list of `EvalStory`) with ``pipe`` (a
    `gill_lite.inference.GillPipeline`). Returns (summary dict, generation results, retrieval results); the
    summary is what ``results.json`` holds.

    The pipeline's frozen parts also measure: ``pipe.parts.eval_clip`` scores generation, and the text tower of
    ``pipe.parts.image_encoder`` is the text-only CLIP baseline. eval_cfg: `gill_lite.config.EvalConfig`
    (bootstrap, recall_at, lpips, seed); oracle: add the generator on the last frame's true description
    (ShapeStories only; an upper bound).
    """
    parts = pipe.parts
    start = time.perf_counter()
    gen = evaluate_generation(pipe, parts.eval_clip, stories, seed=eval_cfg.seed, batch_size=batch_size,
                              lpips=eval_cfg.lpips, progress=progress, oracle=oracle)
    ret = evaluate_retrieval(pipe, parts.image_encoder, stories, ks=tuple(eval_cfg.recall_at),
                             batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - start
    summary = {
        "counts": {"stories": len(stories), "skipped": len(skipped), "retrieval_pool": ret.pool_size},
        "generation": gen.summary(eval_cfg.bootstrap, eval_cfg.seed),
        "retrieval": ret.summary(tuple(eval_cfg.recall_at), eval_cfg.bootstrap, eval_cfg.seed),
        "ceilings": ceilings(stories),
        "skipped": list(skipped),
        "seconds": {"generation": gen.seconds, "retrieval": ret.seconds, "total": seconds},
        "stories_per_second": len(stories) / seconds if seconds > 0 else None,
    }
    for block in (summary["retrieval"], summary["retrieval"].get("equivalent")):  # exact image; same shape
        settings = (block or {}).get("settings", {})
        if "gill/captions_images" in settings and "clip_text/captions" in settings:
            gill, clip = (settings[k]["R@1"]["mean"] for k in ("gill/captions_images", "clip_text/captions"))
            block["gill_over_clip_text_R@1"] = gill / clip if clip > 0 else None
    return summary, gen, ret
