"""``gill-lite standins --profile P [--rebuild] [--only PART ...] [--resume-generator]``: build the stand-ins.

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
    parser.add_argument("--resume-generator", action="store_true", help="continue training the existing generator")
    parser.add_argument("--unet-minutes", type=float, default=None, help="override generator.unet_train_minutes")
    parser.add_argument("--unet-lr", type=float, default=None, help="override generator.lr")


def run(args) -> int:
    import os

    import torch

    from gill_lite.config import get_profile

    from .build import build_standins, standin_dir
    from .cards import card_summary

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    overrides = {k: v for k, v in (("unet_train_minutes", args.unet_minutes), ("lr", args.unet_lr)) if v is not None}
    profile = get_profile(args.profile, **({"generator": overrides} if overrides else {}))
    build_standins(profile, parts=args.only, rebuild=args.rebuild, log=lambda m: print(m, flush=True),
                   resume_generator=args.resume_generator)
    for part in args.only:
        print(card_summary(standin_dir(profile, part)), end="\n\n")
    return 0
