"""``gill-lite report --profile P``: rewrite runs/P/REPORT.md (and the README's results at tiny) from results.json."""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("--profile", default=None, help="ci, tiny (default, or GILL_PROFILE) or paper")
    parser.add_argument("--readme", default=None, help="also update this README's results section (between markers)")
    parser.add_argument("--no-readme", action="store_true", help="never touch the README (default: only at tiny)")


def run(args) -> int:
    from gill_lite.config import get_profile
    from gill_lite.pipeline import ResultsSchemaError, write_report

    profile = get_profile(args.profile)
    update = False if args.no_readme else (True if args.readme else None)
    try:
        path = write_report(profile, update_readme=update, readme_path=args.readme)
    except (FileNotFoundError, ResultsSchemaError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
