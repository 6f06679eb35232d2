"""``gill-lite eval vist``: the VIST protocols on any SIS-format story file.

    gill-lite eval vist --annotations data/fixtures/vist/sis.json --images data/fixtures/vist/images \\
        --profile ci --out runs/ci/eval/fixture

Writes ``<out>/results.json``: settings, metrics with 95% bootstrap intervals, counts, and every skipped
story with its reason (a missing or broken image is reported, never replaced).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="eval_command", required=True)
    vist = sub.add_parser("vist", help="VIST contextual generation + retrieval on a SIS JSON file",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    vist.add_argument("--annotations", required=True, help="SIS JSON (story-in-sequence schema)")
    vist.add_argument("--images", required=True, help="folder of <photo_flickr_id>.<ext> images")
    vist.add_argument("--checkpoint", default=None,
                      help="a saved GillPipeline or GILL stage folder (gill_config.json + trainable.safetensors); "
                           "default: the profile's trained GILL under runs/<profile>/gill")
    vist.add_argument("--profile", default=None, help="ci | tiny | paper (default: GILL_PROFILE or tiny)")
    vist.add_argument("--out", default=None, help="output folder (default: runs/<profile>/eval/vist)")
    vist.add_argument("--limit", type=int, default=None, help="evaluate only the first N stories")
    vist.add_argument("--image-size", type=int, default=None,
                      help="resize images to this square size (default: the world's size, 256 at paper)")
    vist.add_argument("--probe", choices=("auto", "yes", "no"), default="auto",
                      help="score attributes with the ShapeStories probe (auto: for ShapeStories profiles)")
    vist.add_argument("--batch-size", type=int, default=32)


def run(args) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gill_lite.config import get_profile
    from gill_lite.io import atomic_write_json

    from gill_lite.inference import GillPipeline

    from .run import evaluate_vist
    from .stories import sis_stories

    profile = get_profile(args.profile)
    size = args.image_size or (profile.world.image_size if profile.uses_world else 256)
    probe = profile.uses_world if args.probe == "auto" else args.probe == "yes"
    stories, skipped = sis_stories(args.annotations, args.images, size, probe=probe)
    if args.limit is not None:
        stories = stories[: args.limit]
    for s in skipped:
        print(f"skipped {s['story']}: {s['reason']}")
    out = Path(args.out) if args.out else profile.run_dir / "eval" / "vist"
    result = {"annotations": str(args.annotations), "images": str(args.images), "profile": profile.name,
              "settings": ["last_caption", "captions", "captions_images"], "image_size": size}
    if len(stories) < 2:  # retrieval needs a pool; report instead of crashing
        result.update({"error": f"only {len(stories)} usable stories", "skipped": skipped,
                       "counts": {"stories": len(stories), "skipped": len(skipped)}})
        atomic_write_json(out / "results.json", result)
        print(f"not enough usable stories ({len(stories)}); wrote {out / 'results.json'}")
        return 1
    pipe = GillPipeline.for_profile(profile, args.checkpoint)
    summary, _, _ = evaluate_vist(pipe, stories, profile.eval, skipped, batch_size=args.batch_size)
    result.update(summary)
    atomic_write_json(out / "results.json", result)
    _print_summary(summary)
    print(f"wrote {out / 'results.json'}")
    return 0


def _print_summary(summary: dict) -> None:
    for name, row in summary["generation"]["settings"].items():
        print(f"generation {name}: clip {_fmt(row['clip_similarity'])}")
    for name, row in summary["retrieval"]["settings"].items():
        print(f"retrieval {name}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in row.items() if k.startswith("R@")))


def _fmt(d: dict) -> str:
    return f"{d['mean']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"
