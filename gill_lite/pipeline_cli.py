"""``gill-lite reproduce --profile P [--from NOTEBOOK | --only NOTEBOOK]``: run the notebooks, then the report."""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("--profile", default=None, help="ci, tiny (default, or GILL_PROFILE) or paper")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--from", dest="start_from", metavar="NOTEBOOK",
                       help="resume at this notebook (name or number, e.g. 03_generation or 03)")
    group.add_argument("--only", action="append", metavar="NOTEBOOK",
                       help="run only this notebook (repeatable)")
    parser.add_argument("--notebooks-dir", default=None, help="a folder of notebooks (default: the repo's notebooks/)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel (default: gill-lite, else python3)")
    parser.add_argument("--no-report", action="store_true", help="do not write REPORT.md at the end")


def run(args) -> int:
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
    print(f"{len(timings)} notebook(s) in {total:.1f} s; results in runs/{name}/results.json, report in runs/{name}/REPORT.md")
    return 0
