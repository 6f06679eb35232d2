"""The `gill-lite` command line: every subcommand and flag the Makefile, README and docs use still parses, and
building the parser stays light (no torch), so ``gill-lite --help`` answers at once."""
import subprocess
import sys
from pathlib import Path

import pytest

from gill_lite.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, expected", [
    (["reproduce", "--profile", "tiny"], {"profile": "tiny", "start_from": None, "only": None}),  # make demo
    (["reproduce", "--profile", "tiny", "--from", "03_generation"], {"start_from": "03_generation"}),
    (["reproduce", "--profile", "ci", "--only", "00", "--only", "01", "--no-report"], {"only": ["00", "01"],
                                                                                        "no_report": True}),
    (["report", "--profile", "tiny", "--publish"], {"profile": "tiny", "publish": True}),  # make readme
    (["standins", "--profile", "tiny", "--only", "lm", "clip", "--rebuild", "--unet-minutes", "5"],
     {"only": ["lm", "clip"], "rebuild": True, "unet_minutes": 5.0}),
    (["train", "--profile", "paper", "--stage", "joint", "--steps", "3"], {"stage": "joint", "steps": 3}),
    (["eval", "vist", "--annotations", "a.json", "--images", "imgs", "--probe", "no", "--limit", "2"],
     {"eval_command": "vist", "annotations": "a.json", "probe": "no", "limit": 2}),
    (["world", "--profile", "ci", "--out", "/tmp/w"], {"profile": "ci", "out": "/tmp/w"}),
])
def test_documented_commands_parse(argv, expected):
    args = vars(build_parser().parse_args(argv))
    assert args["command"] == argv[0]
    assert {k: args[k] for k in expected} == expected


def test_bad_flags_are_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--stage", "nonsense"])
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["reproduce", "--from", "01", "--only", "02"])  # one or the other
    assert "not allowed with argument" in capsys.readouterr().err


def test_unknown_profile_is_one_line_not_a_traceback(capsys):
    assert main(["world", "--profile", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gill-lite world: error: unknown profile 'nonsense'") and "Traceback" not in err


def test_module_help_runs_without_torch():
    code = ("import sys; from gill_lite.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    done = subprocess.run([sys.executable, "-m", "gill_lite.cli", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and all(c in done.stdout for c in ("world", "reproduce", "report", "train",
                                                                     "eval", "standins"))
