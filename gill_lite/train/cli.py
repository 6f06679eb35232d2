"""``gill-lite train --profile P [--stage joint]``: train GILL (the paper's joint recipe by default)."""
from __future__ import annotations

STAGE_CHOICES = ("captioning", "img_tokens", "generation", "retrieval", "joint")


def add_arguments(parser) -> None:
    parser.add_argument("--profile", default=None, help="ci, tiny or paper (default: $GILL_PROFILE or tiny)")
    parser.add_argument("--stage", default="joint", choices=STAGE_CHOICES,
                        help="joint: all four losses summed, as the paper (default); a single stage trains the "
                             "stages it starts from first")
    parser.add_argument("--steps", type=int, default=None, help="override the profile's step count")


def run(args) -> int:
    import os

    if args.profile != "paper":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # stand-ins are local folders: never reach for a hub
    from ..config import get_profile
    from .loop import train_stage

    overrides = {}
    if args.steps is not None:
        overrides["train"] = {"steps": args.steps, "stage_steps": ()}
    profile = get_profile(args.profile, **overrides)
    model = train_stage(profile, args.stage)
    n = sum(p.numel() for m in model.trainable_modules().values() for p in m.parameters())
    print(f"GILL {args.stage} ({profile.name}): {n / 1e6:.2f}M trainable parameters in {profile.run_dir / 'gill' / args.stage}")
    return 0
