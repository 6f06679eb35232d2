"""VIST evaluation figures at a profile (default tiny): generation table with 95% intervals, attribute accuracy
per setting with ceilings, retrieval R@k for GILL and the baselines, dialogue generation, throughput.

    .venv/bin/python bench/vist.py [--profile tiny] [--n-stories N] [--no-train]

Uses the trained GILL (trains what is missing, unless ``--no-train``). Prints ``name: value`` lines; writes
``runs/bench/vist.json``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gill_lite.config import get_profile, runs_root  # noqa: E402
from gill_lite.io import atomic_write_json  # noqa: E402


def lines(summary: dict, prefix: str = "") -> dict:
    """The summary as flat ``name: value`` figures (intervals as mean / low / high)."""
    out = {}
    for name, row in summary["generation"]["settings"].items():
        c = row["clip_similarity"]
        out[f"{prefix}clip.{name}"] = c["mean"]
        out[f"{prefix}clip.{name}.ci_low"], out[f"{prefix}clip.{name}.ci_high"] = c["low"], c["high"]
        if row.get("paper_clip_similarity"):
            out[f"{prefix}clip.{name}.paper"] = row["paper_clip_similarity"]
        for a, v in row.get("attributes", {}).items():
            out[f"{prefix}attributes.{name}.{a}"] = v["mean"]
    for setting, c in summary.get("ceilings", {}).items():
        for a, v in c["determined"].items():
            out[f"{prefix}ceiling.{setting}.{a}"] = v
        out[f"{prefix}ceiling_best_expected.{setting}.all"] = c["best_expected"]["all"]
    for o in summary["generation"].get("orderings", []):
        d = o["paired_difference"]
        key = f"{prefix}ordering.{o['metric']}.{o['higher']}>{o['lower']}"
        out[key] = o["paired_holds"]
        out[f"{key}.diff"], out[f"{key}.diff_low"], out[f"{key}.diff_high"] = d["mean"], d["low"], d["high"]
    for name, row in summary.get("retrieval", {}).get("settings", {}).items():
        for k, v in row.items():
            if k.startswith("R@"):
                out[f"{prefix}retrieval.{name}.{k}"] = v["mean"]
                out[f"{prefix}retrieval.{name}.{k}.ci_low"], out[f"{prefix}retrieval.{name}.{k}.ci_high"] = v["low"], v["high"]
    eq = summary.get("retrieval", {}).get("equivalent", {})
    for name, row in eq.get("settings", {}).items():
        for k, v in row.items():
            out[f"{prefix}retrieval_{eq['equivalence'].replace(' ', '_')}.{name}.{k}"] = v["mean"]
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--n-stories", type=int, default=None)
    parser.add_argument("--n-dialogues", type=int, default=200)
    parser.add_argument("--no-train", action="store_true",
                        help="measure only a finished GILL: fail rather than train a missing stage (e.g. with "
                             "GILL_RUNS_DIR set to another clone's runs/)")
    args = parser.parse_args(argv)
    import torch

    from gill_lite.evaluate.dialogue import dialogue_items, dialogue_summary, evaluate_dialogues
    from gill_lite.evaluate.stories import evaluation_stories
    from gill_lite.evaluate.vist import evaluate_vist
    from gill_lite.inference import GillPipeline

    torch.manual_seed(0)
    profile = get_profile(args.profile)
    pipe = GillPipeline.for_profile(profile, train_missing=not args.no_train)
    stories, skipped = evaluation_stories(profile, args.n_stories)
    summary, gen, ret = evaluate_vist(pipe, stories, profile.eval, skipped, progress=False)
    figures = {"profile": profile.name, "stories": len(stories), **lines(summary)}
    figures["retrieval.gill_over_clip_text_R@1"] = summary["retrieval"].get("gill_over_clip_text_R@1")
    figures["retrieval.duplicate_targets"] = summary["retrieval"]["duplicate_targets"]
    eq = summary["retrieval"].get("equivalent", {})
    if eq:
        figures[f"retrieval_{eq['equivalence'].replace(' ', '_')}.gill_over_clip_text_R@1"] = eq.get("gill_over_clip_text_R@1")
    items, _ = dialogue_items(profile, min(args.n_dialogues, len(stories)))
    start = time.perf_counter()
    dres = evaluate_dialogues(pipe, pipe.parts.eval_clip, items, seed=profile.eval.seed, progress=False)
    dsum = dialogue_summary(dres, items, profile.eval.bootstrap, profile.eval.seed)
    figures.update(lines(dsum, "dialogue."))
    figures["throughput.stories_per_s"] = summary["stories_per_second"]
    figures["throughput.dialogues_per_s"] = len(items) / (time.perf_counter() - start)
    figures["seconds.generation"] = summary["seconds"]["generation"]
    figures["seconds.retrieval"] = summary["seconds"]["retrieval"]
    for name, value in figures.items():
        print(f"{name}: {round(value, 4) if isinstance(value, float) else value}")
    atomic_write_json(runs_root() / "bench" / "vist.json", {"figures": figures, "summary": summary,
                                                            "dialogue": dsum})
    return figures


if __name__ == "__main__":
    main()
