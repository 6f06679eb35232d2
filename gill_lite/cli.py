"""The ``gill-lite`` command line: the library's only argument parser; each subcommand calls plain functions.

    gill-lite world --profile P [--out DIR]           ShapeStories in the real formats (`gill_lite.data.exports`)
    gill-lite standins --profile P [--rebuild] ...    the stand-in frozen parts (`gill_lite.backbones.build`)
    gill-lite train --profile P [--stage joint]       GILL's training (`gill_lite.train.train_stage`)
    gill-lite eval vist --annotations F --images D    the VIST protocols (`gill_lite.evaluate.vist`)
    gill-lite reproduce --profile P [--from NB]       notebooks 00..07 under papermill (`gill_lite.pipeline`)
    gill-lite report --profile P [--publish]          REPORT.md (and the README's results) (`gill_lite.report`)

Also ``python -m gill_lite.cli ...``. Building the parser imports nothing heavy (no torch): the work is imported
when a subcommand runs.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# gill_lite.train.STAGES (tests/test_structure.py checks they agree); written out so `--help` needs no torch
STAGE_CHOICES = ("captioning", "img_tokens", "generation", "retrieval", "joint")
PROFILE_HELP = "ci, tiny or paper (default: $GILL_PROFILE, else tiny)"


# --------------------------------------------------------------------------------------------------- world
def _world_arguments(parser) -> None:
    parser.add_argument("--profile", default=None, help=PROFILE_HELP)
    parser.add_argument("--out", default=None, help="output folder (default: runs/<profile>/world)")


def _world(args) -> int:
    from gill_lite.config import get_profile
    from gill_lite.data.exports import write_world

    profile = get_profile(args.profile)
    out = Path(args.out) if args.out else profile.run_dir / "world"
    summary = write_world(profile, out)
    print(f"wrote ShapeStories ({profile.name}) to {out}")
    for name, n in summary["sizes"].items():
        print(f"  {name}: {n}")
    for setting, shares in summary["information_ceiling"].items():
        print(f"  ceiling {setting}: all four attributes determined in {shares['all']:.0%} of stories")
    return 0


# ------------------------------------------------------------------------------------------------ standins
def _standins_arguments(parser) -> None:
    from gill_lite.backbones.build import PARTS  # light: build imports torch inside its functions

    parser.add_argument("--profile", default=None, help="ci or tiny (default: $GILL_PROFILE, else tiny)")
    parser.add_argument("--rebuild", action="store_true", help="retrain even the parts that exist")
    parser.add_argument("--only", nargs="*", default=list(PARTS), choices=PARTS, help="parts to build")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 is faster on a busy machine)")
    parser.add_argument("--resume-generator", action="store_true", help="continue training the existing generator")
    parser.add_argument("--unet-minutes", type=float, default=None,
                        help="override the recipe's generator.unet_train_minutes")
    parser.add_argument("--unet-lr", type=float, default=None, help="override the recipe's generator.lr")


def _standins(args) -> int:
    import torch

    from gill_lite.backbones.build import build_standins, standin_dir
    from gill_lite.backbones.cards import card_summary
    from gill_lite.backbones.recipes import standin_recipe
    from gill_lite.config import get_profile

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    profile = get_profile(args.profile)
    overrides = {k: v for k, v in (("unet_train_minutes", args.unet_minutes), ("lr", args.unet_lr)) if v is not None}
    recipe = standin_recipe(profile, **({"generator": overrides} if overrides else {}))
    build_standins(profile, parts=args.only, rebuild=args.rebuild, log=lambda m: print(m, flush=True),
                   resume_generator=args.resume_generator, recipe=recipe)
    for part in args.only:
        print(card_summary(standin_dir(profile, part)), end="\n\n")
    return 0


# --------------------------------------------------------------------------------------------------- train
def _train_arguments(parser) -> None:
    parser.add_argument("--profile", default=None, help=PROFILE_HELP)
    parser.add_argument("--stage", default="joint", choices=STAGE_CHOICES,
                        help="joint: all four losses summed, as the paper (default); a single stage trains the "
                             "stages it starts from first")
    parser.add_argument("--steps", type=int, default=None, help="override the profile's step count")


def _train(args) -> int:
    from gill_lite.config import get_profile

    overrides = {"train": {"steps": args.steps, "stage_steps": ()}} if args.steps is not None else {}
    profile = get_profile(args.profile, **overrides)
    if profile.uses_world:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # stand-ins are local folders: never reach for a hub
    from gill_lite.train import train_stage

    model = train_stage(profile, args.stage)
    n = sum(p.numel() for m in model.trainable_modules().values() for p in m.parameters())
    print(f"GILL {args.stage} ({profile.name}): {n / 1e6:.2f}M trainable parameters in "
          f"{profile.run_dir / 'gill' / args.stage}")
    return 0


# ---------------------------------------------------------------------------------------------------- eval
EVAL_VIST_HELP = """the VIST protocols on any SIS-format story file:

    gill-lite eval vist --annotations data/fixtures/vist/sis.json --images data/fixtures/vist/images \\
        --profile ci --out runs/ci/eval/fixture

Writes <out>/results.json: settings, metrics with 95% bootstrap intervals, counts, and every skipped story with
its reason (a missing or broken image is reported, never replaced)."""


def _eval_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="eval_command", required=True)
    vist = sub.add_parser("vist", help="VIST contextual generation + retrieval on a SIS JSON file",
                          description=EVAL_VIST_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
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


def _eval(args) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gill_lite.config import get_profile
    from gill_lite.evaluate.vist import evaluate_vist_file

    profile = get_profile(args.profile)
    result, path = evaluate_vist_file(profile, args.annotations, args.images, out=args.out,
                                      checkpoint=args.checkpoint, limit=args.limit, image_size=args.image_size,
                                      probe=args.probe, batch_size=args.batch_size)
    if "error" in result:
        print(f"not enough usable stories ({result['counts']['stories']}); wrote {path}")
        return 1
    for name, row in result["generation"]["settings"].items():
        print(f"generation {name}: clip {_interval(row['clip_similarity'])}")
    for name, row in result["retrieval"]["settings"].items():
        print(f"retrieval {name}: " + ", ".join(f"{k} {_interval(v)}" for k, v in row.items() if k.startswith("R@")))
    print(f"wrote {path}")
    return 0


def _interval(d: dict) -> str:
    return f"{d['mean']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


# ----------------------------------------------------------------------------------------------- reproduce
def _reproduce_arguments(parser) -> None:
    parser.add_argument("--profile", default=None, help=PROFILE_HELP)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--from", dest="start_from", metavar="NOTEBOOK",
                       help="resume at this notebook (name or number, e.g. 03_generation or 03)")
    group.add_argument("--only", action="append", metavar="NOTEBOOK",
                       help="run only this notebook (repeatable)")
    parser.add_argument("--notebooks-dir", default=None, help="a folder of notebooks (default: the repo's notebooks/)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel (default: gill-lite, else python3)")
    parser.add_argument("--no-report", action="store_true", help="do not write REPORT.md at the end")


def _reproduce(args) -> int:
    from gill_lite.config import profile_name
    from gill_lite.pipeline import PipelineError, reproduce

    name = profile_name(args.profile)
    try:
        timings = reproduce(name, start_from=args.start_from, only=args.only, notebooks_dir=args.notebooks_dir,
                            kernel=args.kernel, report=not args.no_report)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished notebooks and checkpoints are kept; rerun with --from to resume",
              file=sys.stderr)
        return 130
    total = sum(timings.values())
    print(f"{len(timings)} notebook(s) in {total:.1f} s; results in runs/{name}/results.json, "
          f"report in runs/{name}/REPORT.md")
    return 0


# -------------------------------------------------------------------------------------------------- report
def _report_arguments(parser) -> None:
    parser.add_argument("--profile", default=None, help=PROFILE_HELP)
    parser.add_argument("--publish", action="store_true",
                        help="refresh the committed README results and figures/ from this run (maintainers)")
    parser.add_argument("--readme", default=None, help="with --publish: the README to update (default: the repo's)")


def _report(args) -> int:
    from gill_lite.config import get_profile
    from gill_lite.report import publish_results, write_report
    from gill_lite.results import ResultsSchemaError

    profile = get_profile(args.profile)
    try:
        path = write_report(profile)
        copied = publish_results(profile, readme_path=args.readme) if args.publish else []
    except (FileNotFoundError, ResultsSchemaError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}" + (f"; README results and {len(copied)} figures refreshed" if args.publish else ""))
    return 0


# (subcommand, help, add its arguments, run it)
COMMANDS = [
    ("world", "render ShapeStories and write its exports (CC3M TSV, VIST SIS JSON, decision TSV)",
     _world_arguments, _world),
    ("reproduce", "run notebooks 00..07 with papermill, record results.json, write REPORT.md",
     _reproduce_arguments, _reproduce),
    ("report", "rewrite runs/P/REPORT.md (and the README results at tiny) from results.json",
     _report_arguments, _report),
    ("train", "train GILL: the paper's joint recipe (--stage joint) or one stage of notebooks 01-04",
     _train_arguments, _train),
    ("eval", "evaluate GILL: `eval vist` runs the VIST protocols on any SIS story file", _eval_arguments, _eval),
    ("standins", "build the stand-in frozen parts (LM, CLIPs, generator) with model cards",
     _standins_arguments, _standins),
]


def build_parser() -> argparse.ArgumentParser:
    """The ``gill-lite`` parser with every subcommand of `COMMANDS`."""
    parser = argparse.ArgumentParser(prog="gill-lite", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, run in COMMANDS:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_run=run)
        add_arguments(sp)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the subcommand; returns the exit status."""
    args = build_parser().parse_args(argv)
    from gill_lite.config import UnknownProfileError

    try:
        return int(args._run(args) or 0)
    except (UnknownProfileError, FileNotFoundError) as err:  # user errors: one line, no traceback
        print(f"gill-lite {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
