"""``gill-lite standins --profile P [--rebuild] [--only PART ...]``: build the stand-in frozen parts.

A part whose folder is complete is kept unless ``--rebuild``; each build prints its measured figures and
writes a MODEL_CARD.md. ``tiny`` writes the committed ``models/tiny/*``; ``ci`` writes ``runs/ci/models/*``.
"""
from __future__ import annotations

from .build import PARTS  # light: build imports torch inside its functions


def add_arguments(parser) -> None:
    parser.add_argument("--profile", default=None, help="ci or tiny (default: $GILL_PROFILE or tiny)")
    parser.add_argument("--rebuild", action="store_true", help="retrain even the parts that exist")
    parser.add_argument("--only", nargs="*", default=list(PARTS), choices=PARTS, help="parts to build")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 is faster on a busy machine)")


def run(args) -> int:
    import os

    import torch

    from gill_lite.config import get_profile

    from .build import build_standins, standin_dir
    from .cards import card_summary

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    profile = get_profile(args.profile)
    build_standins(profile, parts=args.only, rebuild=args.rebuild, log=lambda m: print(m, flush=True))
    for part in args.only:
        print(card_summary(standin_dir(profile, part)), end="\n\n")
    return 0
