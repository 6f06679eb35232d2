"""The session guard in the root conftest.py: a test run that writes a tracked file (or an unignored new one)
fails, one that writes only ignored files passes."""
import shutil
import subprocess
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


@pytest.fixture
def repo(pytester):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    shutil.copy(CONFTEST, pytester.path / "conftest.py")
    (pytester.path / "tracked.txt").write_text("as committed\n")
    (pytester.path / ".gitignore").write_text("runs/\n")
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=pytester.path, check=True)
    return pytester


def test_writing_a_tracked_file_fails_the_session(repo):
    repo.makepyfile(test_write="""
        from pathlib import Path
        def test_writes():
            Path("tracked.txt").write_text("changed by a run")
    """)
    subprocess.run(["git", "add", "test_write.py"], cwd=repo.path, check=True)
    result = repo.runpytest_subprocess()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*changed files that git tracks*", "*tracked.txt*"])


def test_writing_under_runs_passes(repo):
    repo.makepyfile(test_write="""
        from pathlib import Path
        def test_writes():
            Path("runs").mkdir(exist_ok=True)
            Path("runs/out.txt").write_text("a run's output")
    """)
    subprocess.run(["git", "add", "test_write.py"], cwd=repo.path, check=True)
    assert repo.runpytest_subprocess().ret == 0
