"""Generate-or-retrieve figures at a profile (default tiny): collected labels, judge agreement, classifier F1.

    .venv/bin/python bench/decision.py [--profile tiny]

Uses the trained GILL (trains what is missing), collects and judges the decision prompts (finished work is
reused), trains the decision head, and prints ``name: value`` lines; writes them to ``runs/bench/decision.json``.
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


def flatten(figures: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    args = parser.parse_args(argv)
    from gill_lite.decision.stage import run_decision_stage

    profile = get_profile(args.profile)
    start = time.perf_counter()
    figures = run_decision_stage(profile, progress=False)
    figures.pop("_")
    figures["profile"] = profile.name
    figures["seconds"] = round(time.perf_counter() - start, 1)
    figures["classifier_target_met"] = figures["classifier_macro_f1"]["value"] >= 0.80
    for name, value in flatten(figures).items():
        print(f"{name}: {round(value, 4) if isinstance(value, float) else value}")
    atomic_write_json(runs_root() / "bench" / "decision.json", figures)
    return figures


if __name__ == "__main__":
    main()
