"""Profiles: names, errors, the GILL_PROFILE override and per-field overrides."""
import pytest

from gill_lite.config import PROFILE_NAMES, UnknownProfileError, get_profile, notebook_profile


def test_known_profiles():
    for name in PROFILE_NAMES:
        p = get_profile(name)
        assert p.name == name and p.world.image_size > 0
    assert get_profile("ci").world.n_train < get_profile("tiny").world.n_train
    assert get_profile("paper").uses_world is False


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(UnknownProfileError) as err:
        get_profile("nope")
    assert all(name in str(err.value) for name in PROFILE_NAMES) and "nope" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_env_chooses_the_profile(monkeypatch):
    monkeypatch.delenv("GILL_PROFILE", raising=False)
    assert get_profile().name == "tiny"
    assert notebook_profile("ci").name == "ci"
    monkeypatch.setenv("GILL_PROFILE", "ci")
    assert get_profile().name == "ci"
    assert notebook_profile("tiny").name == "tiny"  # the parameter (papermill's -p) wins over the environment
    with pytest.raises(UnknownProfileError):
        notebook_profile("bogus")


def test_overrides_change_one_value_and_keep_the_rest():
    base = get_profile("tiny")
    p = get_profile("tiny", world={"n_train": 10}, train={"steps": 3})
    assert p.world.n_train == 10 and p.train.steps == 3
    assert p.world.n_val == base.world.n_val and p.train.lr == base.train.lr
    assert base.world.n_train != 10  # the default profile is untouched
    with pytest.raises(TypeError, match="no field"):
        get_profile("tiny", world={"bogus": 1})
    with pytest.raises(TypeError, match="no part"):
        get_profile("tiny", bogus={})


def test_run_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GILL_RUNS_DIR", str(tmp_path))
    assert get_profile("ci").run_dir == tmp_path / "ci"


def test_runs_root_and_the_benchmarks_follow_env(monkeypatch, tmp_path):
    from gill_lite.config import REPO_ROOT, runs_root

    monkeypatch.delenv("GILL_RUNS_DIR", raising=False)
    assert runs_root() == REPO_ROOT / "runs"
    monkeypatch.setenv("GILL_RUNS_DIR", str(tmp_path))
    assert runs_root() == tmp_path
    # a trial with its own GILL_RUNS_DIR must not overwrite the main run's figures: no benchmark names the
    # repository's runs/ folder itself
    for bench in sorted((REPO_ROOT / "bench").glob("*.py")):
        assert '/ "runs"' not in bench.read_text(), f"{bench.name} writes under the repository's runs/, not runs_root()"
