"""Time the reproduction pipeline: `gill-lite reproduce` for a profile, per notebook and in total.

    python bench/pipeline.py                       # the tiny pipeline, all notebooks (the README's main command)
    python bench/pipeline.py --profile ci --only 00_world --only 01_image_input

Prints ``time_<notebook>: seconds`` lines and ``total_s``, and writes ``runs/bench/pipeline.json``. Training
stages reuse finished checkpoints, so a second run measures the warm (cached) pipeline; pass ``--fresh`` to
delete ``runs/<profile>`` first and measure it from the committed stand-ins.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> dict:
    from gill_lite.config import get_profile, runs_root
    from gill_lite.io import atomic_write_json
    from gill_lite.results import machine_info

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--only", action="append", help="time only these notebooks (repeatable)")
    parser.add_argument("--from", dest="start_from", help="start at this notebook")
    parser.add_argument("--fresh", action="store_true", help="remove runs/<profile> first (a cold run)")
    parser.add_argument("--out", default=None, help="default: runs/bench/pipeline.json (under GILL_RUNS_DIR if set)")
    args = parser.parse_args(argv)

    from gill_lite.pipeline import reproduce

    profile = get_profile(args.profile)
    if args.fresh and profile.run_dir.exists():
        shutil.rmtree(profile.run_dir)
    start = time.perf_counter()
    timings = reproduce(profile.name, start_from=args.start_from, only=args.only)
    total = time.perf_counter() - start
    result = {"profile": profile.name, "fresh": args.fresh, "notebooks": {k: round(v, 2) for k, v in timings.items()},
              "notebooks_s": round(sum(timings.values()), 2), "total_s": round(total, 2), "machine": machine_info()}
    for name, seconds in timings.items():
        print(f"time_{name}: {seconds:.1f}")
    print(f"notebooks_s: {result['notebooks_s']}")
    print(f"total_s: {result['total_s']}")
    atomic_write_json(args.out or runs_root() / "bench" / "pipeline.json", result)
    return result


if __name__ == "__main__":
    main()
