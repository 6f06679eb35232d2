"""``gill-lite report --profile P [--publish]``: rewrite runs/P/REPORT.md from results.json; ``--publish`` (the
maintainer's ``make readme``) also copies the README's figures into figures/ and rewrites the README's results."""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("--profile", default=None, help="ci, tiny (default, or GILL_PROFILE) or paper")
    parser.add_argument("--publish", action="store_true",
                        help="refresh the committed README results and figures/ from this run (maintainers)")
    parser.add_argument("--readme", default=None, help="with --publish: the README to update (default: the repo's)")


def run(args) -> int:
    from gill_lite.config import get_profile
    from gill_lite.pipeline import ResultsSchemaError, write_report
    from gill_lite.report import publish_results

    profile = get_profile(args.profile)
    try:
        path = write_report(profile)
        copied = publish_results(profile, readme_path=args.readme) if args.publish else []
    except (FileNotFoundError, ResultsSchemaError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}" + (f"; README results and {len(copied)} figures refreshed" if args.publish else ""))
    return 0
