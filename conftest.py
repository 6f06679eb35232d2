"""Checks for the whole `make test` session: running the tests and executing the notebooks must leave every
tracked file as it was, and add no file outside the git-ignored ones (a run writes only under ``runs/``)."""
from __future__ import annotations

import subprocess
from pathlib import Path

pytest_plugins = ("pytester",)  # tests/test_tree_guard.py runs this guard on a scratch repository

REPO = Path(__file__).resolve().parent


def git_status(root: Path = REPO) -> set[str] | None:
    """``git status --porcelain`` lines (untracked files included), or None outside a git checkout."""
    try:
        done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return set(done.stdout.splitlines()) if done.returncode == 0 else None


def pytest_sessionstart(session):
    session.config.stash_git_status = git_status(Path(str(session.config.rootpath)))


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "stash_git_status", None)
    after = git_status(Path(str(session.config.rootpath))) if before is not None else None
    changed = sorted(after - before) if after is not None else []
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = ("the test session changed files that git tracks or does not ignore (runs write only under "
                   "runs/):\n  " + "\n  ".join(changed[:20]))
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = 1
