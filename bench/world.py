"""ShapeStories figures: rendering and probe throughput, dataset sizes per profile, information ceilings.

    .venv/bin/python bench/world.py

Prints ``name: value`` lines and writes the same figures to ``runs/bench/world.json``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gill_lite.backbones.recipes import StandinRecipe, standin_recipe  # noqa: E402
from gill_lite.config import PROFILE_NAMES, get_profile, runs_root  # noqa: E402
from gill_lite.io import atomic_write_json  # noqa: E402
from gill_lite.world.corpus import heldout_shapes, make_split, render_images, split_sizes  # noqa: E402
from gill_lite.world.probe import attribute_accuracy  # noqa: E402
from gill_lite.world.stories import information_ceiling, make_stories  # noqa: E402


def _rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> dict:
    figures: dict[str, float | int] = {}
    examples = make_split("test", 2000, seed=0)
    figures["render_images_per_s"] = round(_rate(lambda: render_images(examples, 32), len(examples)), 1)
    figures["render_64px_images_per_s"] = round(_rate(lambda: render_images(examples[:500], 64), 500), 1)
    images = render_images(examples[:500], 32)
    acc = {}
    figures["probe_images_per_s"] = round(_rate(lambda: acc.update(attribute_accuracy(images, [e.shape for e in examples[:500]])), 500), 1)
    figures["probe_accuracy_all"] = acc["all"]
    figures["stories_per_s"] = round(_rate(lambda: make_stories(500, seed=0), 500), 1)
    for name in PROFILE_NAMES:
        profile = get_profile(name)
        w = profile.world
        for split, n in split_sizes(w).items():
            figures[f"{name}_{split}_examples"] = n
        figures[f"{name}_eval_stories"] = w.n_stories
        # the stories the LM stand-in reads (its recipe); paper builds no stand-ins: the default recipe's, as before
        lm = (standin_recipe(profile) if profile.standins else StandinRecipe()).lm
        figures[f"{name}_lm_stories"] = lm.n_stories
        figures[f"{name}_decision_prompts"] = w.n_decision_prompts
        figures[f"{name}_dialogues"] = w.n_dialogues
        figures[f"{name}_heldout_combinations"] = len(heldout_shapes(w.seed, w.heldout_fraction))
    ceiling = information_ceiling(make_stories(get_profile("tiny").world.n_stories, seed=0))
    for setting, shares in ceiling.items():
        for attr, share in shares.items():
            figures[f"ceiling_{setting}_{attr}"] = round(share, 3)
    for key, value in figures.items():
        print(f"{key}: {value}")
    atomic_write_json(runs_root() / "bench" / "world.json", figures)
    return figures


if __name__ == "__main__":
    main()
