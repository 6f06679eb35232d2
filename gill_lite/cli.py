"""The ``gill-lite`` command line: one subcommand per job, each defined next to the code it runs."""
from __future__ import annotations

import argparse
import importlib
import sys

# (subcommand, module, help). Each module defines ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS = [
    ("world", "gill_lite.world.cli", "render ShapeStories and write its exports (CC3M TSV, VIST SIS JSON, decision TSV)"),
    ("reproduce", "gill_lite.pipeline_cli", "run notebooks 00..07 with papermill, record results.json, write REPORT.md"),
    ("report", "gill_lite.report_cli", "rewrite runs/P/REPORT.md (and the README results at tiny) from results.json"),
    ("train", "gill_lite.train.cli", "train GILL: the paper's joint recipe (--stage joint) or one stage of notebooks 01-04"),
    ("eval", "gill_lite.evaluate.cli", "evaluate GILL: `eval vist` runs the VIST protocols on any SIS story file"),
    ("standins", "gill_lite.backbones.cli", "build the stand-in frozen parts (LM, CLIPs, generator) with model cards"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gill-lite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module, help_text in COMMANDS:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(sp)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from gill_lite.config import UnknownProfileError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except (UnknownProfileError, FileNotFoundError) as err:  # user errors: one line, no traceback
        print(f"gill-lite {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
