"""Quality of the stand-in frozen parts: LM perplexity, CLIP recall, generator attribute accuracy, probe.

    .venv/bin/python bench/standins.py [--profile tiny] [--no-cards]

Prints ``name: value`` lines (greedy LM samples after them), writes ``runs/bench/standins.json`` and, for the
committed ``tiny`` stand-ins, records the figures in each folder's model card.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gill_lite.config import get_profile, runs_root  # noqa: E402
from gill_lite.io import atomic_write_json  # noqa: E402


def main(argv=None) -> dict:
    import torch

    from gill_lite.backbones import load_frozen_parts, standin_dir
    from gill_lite.backbones.cards import update_model_card
    from gill_lite.backbones.quality import card_figures, measure_standins
    from gill_lite.backbones.recipes import standin_recipe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=os.environ.get("GILL_PROFILE", "tiny"))
    parser.add_argument("--no-cards", action="store_true", help="do not update the model cards")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    profile = get_profile(args.profile)
    recipe = standin_recipe(profile)
    parts = load_frozen_parts(profile, build_missing=not recipe.committed)  # committed stand-ins are never rebuilt
    figures, samples = measure_standins(parts, profile, n_text=recipe.measure_texts, n_clip=recipe.measure_images,
                                        n_gen=recipe.measure_captions)
    for key, value in figures.items():
        print(f"{key}: {value}")
    print("\nLM greedy samples:")
    for s in samples["lm_greedy"]:
        print(f"  {s!r}")
    atomic_write_json(runs_root() / "bench" / "standins.json", {"profile": profile.name, **figures, "samples": samples})
    if recipe.committed and not args.no_cards:  # the committed cards carry the bench's figures
        for part, figs in card_figures(figures).items():
            update_model_card(standin_dir(profile, part), {f"bench: {k}": v for k, v in figs.items()},
                              samples=samples["lm_greedy"] if part == "lm" else None)
    return figures


if __name__ == "__main__":
    main()
