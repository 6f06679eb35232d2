"""GILL's stage figures at a profile (default tiny): captioning, [IMG0] emission, generation through the mapper,
retrieval recall, and training throughput with and without the frozen-encoder caches.

    .venv/bin/python bench/gill_stages.py [--profile tiny] [--n-generate 200] [--throughput-steps 30]

Uses the trained stage-by-stage GILL (trains what is missing). Prints ``name: value`` lines; writes
``runs/bench/gill_stages.json``. Targets (issue 4): captioning all-attribute accuracy >= 0.90 on held-out
images; [IMG0] emission >= 0.95; generation within 10 points of the generator given the true caption;
throughput with caches >= 2x without.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gill_lite.config import get_profile, runs_root  # noqa: E402
from gill_lite.io import atomic_write_json  # noqa: E402


def throughput(profile, parts, steps: int,
               stages=("joint", "captioning", "img_tokens", "generation", "retrieval")) -> dict:
    """Steps/s with the feature caches against running the frozen encoders (and, for ShapeStories, the renderer)
    on every batch, for the joint stage and for each of the four stages (the cached generation and retrieval
    runs also read the LM's [IMG] states from their cache instead of running the LM:
    `gill_lite.train.caches.img_states`), and the time of the whole staged recipe at those rates. Wall-clock and per CPU-second (the latter
    is what to compare on a shared machine); cached and uncached runs alternate to share the same load."""
    from gill_lite.model import GillModel
    from gill_lite.train.loop import train

    out = {}
    for stage in stages:
        for use_cache in (True, False, True, False):
            model = GillModel.build(parts, profile.train)
            with tempfile.TemporaryDirectory() as tmp:
                # the stage's full length decides whether the [IMG] states are cached; only `steps` run
                s = train(model, stage, parts, profile, tmp, use_cache=use_cache, stop_after=steps, progress=False)
            key = f"throughput.{stage}.{'cached' if use_cache else 'uncached'}"
            for name in ("steps_per_s", "steps_per_cpu_s"):
                out.setdefault(f"{key}.{name}", []).append(s[name])
            out[f"{key}.peak_rss_mb"] = s["peak_memory_mb"]
            out[f"{key}.cache_build_s"] = s["cache_seconds"]  # 0 when the caches were already on disk
        for name in ("steps_per_s", "steps_per_cpu_s"):
            c, u = (max(out[f"throughput.{stage}.{k}.{name}"]) for k in ("cached", "uncached"))
            out[f"throughput.{stage}.cached.{name}"], out[f"throughput.{stage}.uncached.{name}"] = c, u
            out[f"throughput.{stage}.ratio.{name}"] = round(c / u, 2)
    # the whole staged recipe of the profile (what the notebooks train): its steps at each stage's rates
    staged = [s for s in ("captioning", "img_tokens", "generation", "retrieval") if s in stages]
    if len(staged) == 4:
        from gill_lite.train.loop import steps_for

        for kind in ("cached", "uncached"):
            out[f"throughput.staged_chain.{kind}_s"] = round(sum(
                steps_for(profile.train, s) / out[f"throughput.{s}.{kind}.steps_per_s"] for s in staged), 1)
        out["throughput.staged_chain.ratio"] = round(
            out["throughput.staged_chain.uncached_s"] / out["throughput.staged_chain.cached_s"], 2)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--n-generate", type=int, default=200, help="captions generated for the probe (x2 images)")
    parser.add_argument("--throughput-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--only", choices=("all", "quality", "throughput"), default="all",
                        help="measure only the stage figures or only the throughput (merged into the JSON)")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from gill_lite.backbones import load_frozen_parts
    from gill_lite.train import stage_dir, train_stage
    from gill_lite.evaluate.stages import (caption_accuracy, generation_accuracy, img_emission_share, retrieval_ceiling,
                                         retrieval_recall)
    from gill_lite.world.corpus import make_split

    profile = get_profile(args.profile)
    w = profile.world
    parts = load_frozen_parts(profile)
    out_path = runs_root() / "bench" / "gill_stages.json"
    figures = {"profile": profile.name, "threads": torch.get_num_threads()}
    if args.only == "throughput":
        old = json.loads(out_path.read_text()) if out_path.exists() else {}
        figures = {**{k: v for k, v in old.items() if not k.startswith("throughput.")}, **figures,
                   **throughput(profile, parts, args.throughput_steps)}
        for k, v in figures.items():
            print(f"{k}: {v}")
        atomic_write_json(out_path, figures)
        return figures
    t0 = time.time()
    model = train_stage(profile, "retrieval", parts)  # the staged chain: captioning -> img_tokens -> generation -> retrieval
    figures["train_or_load_s"] = round(time.time() - t0, 1)
    for stage in ("captioning", "img_tokens", "generation", "retrieval"):
        run = json.loads((stage_dir(profile, stage) / "gill_config.json").read_text()).get("run", {})
        figures[f"train.{stage}.seconds"] = run.get("seconds")
        figures[f"train.{stage}.steps"] = run.get("steps")
        figures[f"train.{stage}.final_losses"] = run.get("last")

    split = lambda name, n: make_split(name, n, w.seed, w.heldout_fraction, w.image_size)  # noqa: E731
    heldout, test = split("heldout", w.n_heldout), split("test", w.n_test)

    t = time.time()
    acc, _ = caption_accuracy(model, heldout, w.image_size)
    figures |= {f"captioning.heldout.{k}": round(v, 4) for k, v in acc.items()}
    acc, _ = caption_accuracy(model, test[:500], w.image_size)
    figures |= {f"captioning.test.{k}": round(v, 4) for k, v in acc.items()}
    figures["captioning.eval_s"] = round(time.time() - t, 1)
    from gill_lite.evaluate.stages import image_encoder_probe

    probe = image_encoder_probe(profile, parts.image_encoder, heldout)
    figures |= {f"captioning.heldout.linear_probe_ceiling.{k}": round(v, 4) for k, v in probe.items()}

    figures["img0_emission.test"] = round(img_emission_share(model, [e.caption for e in test]), 4)
    figures["img0_emission.heldout"] = round(img_emission_share(model, [e.caption for e in heldout]), 4)

    t = time.time()
    gen = generation_accuracy(model, parts.generator, test[: args.n_generate], seed=0)
    figures |= {f"generation.gill.{k}": round(v, 4) for k, v in gen["gill"].items()}
    figures |= {f"generation.ceiling.{k}": round(v, 4) for k, v in gen["ceiling"].items()}
    figures["generation.gap_all_points"] = round(100 * (gen["ceiling"]["all"] - gen["gill"]["all"]), 1)
    figures["generation.eval_s"] = round(time.time() - t, 1)

    for name, pool in (("test", test[: profile.eval.retrieval_pool or len(test)]), ("heldout", heldout)):
        r = retrieval_recall(model, pool, profile.eval.recall_at, w.image_size)
        figures[f"retrieval.{name}.pool"] = len(pool)
        figures |= {f"retrieval.{name}.{k}": round(v, 4) for k, v in r.items()}
        figures |= {f"retrieval.{name}.ceiling.{k}": round(v, 4) for k, v in retrieval_ceiling(pool, profile.eval.recall_at).items()}

    if args.only == "all":
        figures |= throughput(profile, parts, args.throughput_steps)
    elif out_path.exists():  # keep the throughput figures of an earlier run
        figures |= {k: v for k, v in json.loads(out_path.read_text()).items() if k.startswith("throughput.")}
    for k, v in figures.items():
        print(f"{k}: {v}")
    atomic_write_json(out_path, figures)
    return figures


if __name__ == "__main__":
    main()
