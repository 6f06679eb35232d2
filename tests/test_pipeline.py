"""The reproduce pipeline: resume, failure messages, atomic results.json, its schema, the report, README markers."""
from __future__ import annotations

import json
import math
import pathlib

import nbformat
import pytest

from gill_lite import pipeline
from gill_lite.config import get_profile
from gill_lite.pipeline import (
    NOTEBOOKS,
    PipelineError,
    ResultsSchemaError,
    load_results,
    record_results,
    reproduce,
    select_notebooks,
    update_readme_results,
    validate_results,
    write_report,
)
from gill_lite.results import new_results, record_timing, results_path


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GILL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("GILL_FIGURES_DIR", raising=False)
    return tmp_path / "runs"


def _notebook(path: pathlib.Path, *cells: str) -> None:
    """A notebook: a `parameters` cell, then ``cells`` as code cells (the first code cell is the parameters)."""
    params = nbformat.v4.new_code_cell('PROFILE = "tiny"')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# test"), params]
                                  + [nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


RECORD = ("from gill_lite.config import notebook_profile\n"
          "from gill_lite.pipeline import record_results\n"
          "profile = notebook_profile(PROFILE)\n"
          "record_results(profile, {stage!r}, {{'profile_seen': profile.name, 'x': 1.5}})")


def test_failure_message_keeps_finished_work_and_resume(tmp_path, runs_dir):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_ok.ipynb", RECORD.format(stage="ok"))
    _notebook(nbs / "02_bad.ipynb", 'raise ValueError("boom in cell two")', "y = 2")
    _notebook(nbs / "03_after.ipynb", RECORD.format(stage="after"))

    with pytest.raises(PipelineError) as info:
        reproduce("ci", notebooks_dir=nbs, progress=False)
    message = str(info.value)
    assert "\n" not in message  # one message
    assert "02_bad" in message and "code cell 2" in message
    assert "ValueError: boom in cell two" in message
    assert "--from 02_bad" in message

    out = runs_dir / "ci" / "notebooks"
    assert (out / "01_ok.ipynb").exists() and (out / "02_bad.ipynb").exists()  # the failed copy, for debugging
    assert not (out / "03_after.ipynb").exists()
    assert not list(out.glob(".*partial*"))
    results = load_results("ci")
    assert results["stages"]["ok"]["figures"] == {"profile_seen": "ci", "x": 1.5}  # -p PROFILE ci reached it
    assert set(results["timings"]) == {"01_ok"}
    assert (runs_dir / "ci" / "REPORT.md").exists()  # the finished part is reported

    # fix the notebook and resume there: 01 is not run again
    _notebook(nbs / "02_bad.ipynb", "y = 2")
    (out / "01_ok.ipynb").unlink()
    timings = reproduce("ci", start_from="02", notebooks_dir=nbs, progress=False)
    assert list(timings) == ["02_bad", "03_after"]
    assert not (out / "01_ok.ipynb").exists()
    results = load_results("ci")
    assert set(results["timings"]) == {"01_ok", "02_bad", "03_after"}
    assert set(results["stages"]) == {"ok", "after"}


def test_select_notebooks():
    assert select_notebooks(NOTEBOOKS) == NOTEBOOKS
    assert select_notebooks(NOTEBOOKS, start_from="03")[0] == "03_generation"
    assert select_notebooks(NOTEBOOKS, start_from="05_decision.ipynb") == NOTEBOOKS[5:]
    assert select_notebooks(NOTEBOOKS, only="vist_eval") == ["06_vist_eval"]
    assert select_notebooks(NOTEBOOKS, only=["07", "00"]) == ["00_world", "07_dialogue"]
    with pytest.raises(PipelineError, match="unknown notebook '09'"):
        select_notebooks(NOTEBOOKS, start_from="09")
    with pytest.raises(PipelineError, match="either"):
        select_notebooks(NOTEBOOKS, start_from="01", only="02")


def test_missing_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        reproduce("ci", notebooks_dir=tmp_path, notebooks=["00_world"], progress=False)


def test_record_results_merges_and_converts():
    np = pytest.importorskip("numpy")
    record_results("ci", "vist", {"clip_similarity": {"gill_1_caption": np.float32(0.5)}, "n": np.int64(3)})
    record_results("ci", "vist", {"clip_similarity": {"gill_5_captions": 0.6}})
    record_results("ci", "other", {"table": [1, 2]})
    figures = load_results("ci")["stages"]["vist"]["figures"]
    assert figures == {"clip_similarity": {"gill_1_caption": 0.5, "gill_5_captions": 0.6}, "n": 3}
    on_disk = json.loads(results_path(get_profile("ci")).read_text())
    assert validate_results(on_disk)["stages"]["other"]["figures"] == {"table": [1, 2]}
    assert on_disk["machine"]["cpu_count"] >= 1


def test_crash_mid_write_keeps_previous_results(monkeypatch):
    record_results("ci", "stage", {"a": 1})
    path = results_path(get_profile("ci"))
    before = path.read_text()

    real_write_text = pathlib.Path.write_text

    def crash(self, text, *args, **kwargs):  # half the bytes reach the disk, then Ctrl-C
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(pathlib.Path, "write_text", crash)
        record_results("ci", "stage", {"a": 2, "b": 3})
    assert path.read_text() == before
    assert load_results("ci")["stages"]["stage"]["figures"] == {"a": 1}
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_bad_values_are_refused_and_leave_file_intact():
    record_results("ci", "stage", {"a": 1})
    path = results_path(get_profile("ci"))
    before = path.read_text()
    with pytest.raises(ResultsSchemaError, match="finite"):
        record_results("ci", "stage", {"a": math.nan})
    with pytest.raises(ResultsSchemaError, match="JSON value"):
        record_results("ci", "stage", {"a": object()})
    with pytest.raises(ValueError):
        record_results("ci", "", {"a": 1})
    assert path.read_text() == before


def _valid() -> dict:
    obj = new_results("ci")
    obj["stages"]["s"] = {"figures": {"x": 1.0, "t": {"a": [1, 2]}}, "updated": "2025-01-01T00:00:00+00:00"}
    obj["timings"]["00_world"] = 3.5
    obj["images"]["fig"] = {"path": "figures/fig.png", "stage": "s"}
    return obj


@pytest.mark.parametrize("breaks, match", [
    (lambda o: o.pop("stages"), "misses"),
    (lambda o: o.update(extra=1), "unknown key"),
    (lambda o: o.update(profile=""), "profile"),
    (lambda o: o.update(created="yesterday"), "ISO"),
    (lambda o: o["machine"].update(cpu_count=0), "cpu_count"),
    (lambda o: o["stages"]["s"].pop("updated"), "stage 's'"),
    (lambda o: o["stages"]["s"].update(figures=[1]), "figures"),
    (lambda o: o["stages"]["s"]["figures"].update(x=math.inf), "finite"),
    (lambda o: o["timings"].update(bad=-1), "timings.bad"),
    (lambda o: o["timings"].update(bad="1 s"), "timings.bad"),
    (lambda o: o["images"].update(bad={"where": "x"}), "images.bad"),
    (lambda o: o.update(schema_version=99), "schema_version"),
])
def test_schema_validation(breaks, match):
    assert validate_results(_valid())
    obj = _valid()
    breaks(obj)
    with pytest.raises(ResultsSchemaError, match=match):
        validate_results(obj)


def test_corrupt_results_file_is_a_clear_error():
    path = results_path(get_profile("ci"))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ResultsSchemaError, match="not valid JSON"):
        load_results("ci")


def test_report_from_hand_made_results(tmp_path):
    profile = get_profile("ci")
    image = tmp_path / "pics" / "03_samples.png"
    image.parent.mkdir()
    image.write_bytes(b"\x89PNG")
    obj = _valid()
    obj["stages"] = {
        "06_vist": {"figures": {"clip_similarity": {
            "gill_captions": 0.7123, "gill_last_caption": {"value": 0.55, "ci95": [0.5, 0.6]}}},
            "updated": "2025-01-01T00:00:00+00:00"},
        "my_new_stage": {"figures": {"speed": {"value": 12.0, "paper": 10.0}, "note": "a|b"},
                         "updated": "2025-01-01T00:00:00+00:00"},
    }
    obj["timings"] = {"01_image_input": 70.0, "00_world": 10.0, "zz_extra": 1.0}
    obj["images"] = {"03_samples": {"path": str(image), "stage": "generation"},
                     "gone": {"path": str(tmp_path / "gone.png"), "stage": None}}
    results_path(profile).parent.mkdir(parents=True)
    results_path(profile).write_text(json.dumps(obj))

    report = write_report(profile, update_readme=False)
    text = report.read_text()
    assert report == profile.run_dir / "REPORT.md"
    assert "| `clip_similarity.gill_captions` (GILL, 5 captions) | 0.712 | 0.612 |" in text
    assert "0.550" in text and "ci95: [0.500, 0.600]" in text and "0.581" in text
    assert "`clip_similarity.gill_captions_images` (GILL, 5 captions + 4 images) | not measured | 0.641" in text
    assert "## my_new_stage" in text and "| `speed` | 12.000 | 10.000 |" in text and "a\\|b" in text
    assert "**decision**" in text and "0.851" in text  # paper numbers not measured yet are listed
    assert "1 min 21 s" in text  # total time
    assert text.index("| 00_world |") < text.index("| 01_image_input |") < text.index("| zz_extra |")
    assert f"![03_samples](../../pics/03_samples.png)" in text
    assert (report.parent / "../../pics/03_samples.png").resolve() == image.resolve()
    assert "file missing" in text
    assert "CPUs" in text and "torch" in text


def test_readme_summary_states_targets_met_and_missed(tmp_path, monkeypatch):
    from gill_lite.pipeline import NOTEBOOKS
    from gill_lite.report import CLAIMS, render_summary

    stamp = "2025-01-01T00:00:00+00:00"
    results = {"stages": {
        "captioning": {"figures": {"caption_accuracy_heldout": {"all": 0.42}}, "updated": stamp},
        "img_tokens": {"figures": {"img0_emission_share": 0.97}, "updated": stamp},
        "generation": {"figures": {"probe_accuracy_gill": {"all": 0.70},
                                   "probe_accuracy_generator_from_caption": {"all": 0.81}}, "updated": stamp},
        "06_vist": {"figures": {"clip_similarity": {"gill_captions": {"value": 0.3, "ci95": [0.2, 0.4]}},
                                "retrieval": {"gill_captions_images_R1": 0.05, "clip_text_captions_R1": 0.02}},
                    "updated": stamp},
    }, "timings": {n: 100.0 for n in NOTEBOOKS}}
    text = render_summary(results)
    assert "| captioning: all 4 attributes right, held-out combinations | 0.420 | >= 0.900 | **missed** |" in text
    assert "| 0.970 | >= 0.950 | met |" in text
    assert "| 0.700 | within 0.100 of 0.810 | **missed** |" in text
    assert "| VIST CLIP similarity: GILL, 5 captions | 0.300 | paper 0.612 |  |" in text
    assert "| 0.050 | >= 2 x 0.020 | met |" in text
    results["stages"]["06_vist"]["figures"]["retrieval"]["clip_text_captions_R1"] = 0.0
    assert "| 0.050 | >= 2 x 0.000 | not measurable (baseline 0) |" in render_summary(results)
    assert "decision" not in text.lower()  # stages not recorded are left out
    assert "| all notebooks, end to end | 13 min 20 s | <= 15 min on 2 CPUs | met |" in text
    orderings = {"clip_similarity": {
        "gill_captions>gill_last_caption": {"value": 0.05, "ci": [0.01, 0.09], "holds": True},
        "gill_captions>sd_captions": {"value": -0.04, "ci": [-0.07, -0.01], "holds": False},
        "gill_captions_images>gill_captions": {"value": 0.01, "ci": [-0.02, 0.04], "holds": False}}}
    results["stages"]["06_vist"]["figures"]["orderings"] = orderings
    text = render_summary(results)
    assert "GILL 5 captions > GILL last caption, paired difference | +0.050 [+0.010, +0.090] | paper: holds | holds |" in text
    assert "| -0.040 [-0.070, -0.010] | paper: holds | **reversed** |" in text
    assert "| +0.010 [-0.020, +0.040] | paper: holds | **not shown** |" in text
    claims = render_summary(results, CLAIMS).splitlines()
    assert len(claims) == 2 + 3 and claims[2].startswith("| VIST ordering (CLIP similarity): GILL 5 captions > GILL last")
    assert "end to end" not in "\n".join(claims)  # the claims table holds the claims only
    results["timings"][NOTEBOOKS[0]] = 1000.0
    assert "**missed** |" in render_summary(results).splitlines()[-1]
    del results["timings"][NOTEBOOKS[-1]]  # a partial run has no total to judge
    assert "end to end" not in render_summary(results)


def test_report_without_results_is_a_clear_error():
    from gill_lite.cli import main

    with pytest.raises(FileNotFoundError, match="gill-lite reproduce --profile ci"):
        write_report(get_profile("ci"))
    assert main(["report", "--profile", "ci"]) == 1


def test_readme_marker_replacement(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# T\n\n## Results\n<!-- results:start -->\nold\n<!-- results:end -->\n\n## After\n")
    update_readme_results(readme, "| a | b |\n")
    text = readme.read_text()
    assert text == "# T\n\n## Results\n<!-- results:start -->\n| a | b |\n<!-- results:end -->\n\n## After\n"
    update_readme_results(readme, "| a | b |\n")
    assert readme.read_text() == text  # idempotent

    readme.write_text("# T\nno markers\n")
    with pytest.raises(ValueError, match="results:start"):
        update_readme_results(readme, "x")
    assert readme.read_text() == "# T\nno markers\n"


def test_write_report_updates_readme_when_asked(tmp_path):
    record_results("ci", "stage", {"a": 1})
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    write_report(get_profile("ci"), update_readme=True, readme_path=readme)
    assert "No headline figure" in readme.read_text() and "`a`" not in readme.read_text()  # REPORT.md has it
    record_results("ci", "img_tokens", {"img0_emission_share": 0.9})
    write_report(get_profile("ci"), update_readme=True, readme_path=readme)
    assert "| 0.900 | >= 0.950 | **missed** |" in readme.read_text()


def test_save_figure_registers_image(runs_dir):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gill_lite.figures import figure_dir, save_figure

    profile = get_profile("ci")
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    path = save_figure(fig, profile, "01_loss", stage="captioning")
    plt.close(fig)
    assert path == runs_dir / "ci" / "figures" / "01_loss.png" and path.read_bytes()[:4] == b"\x89PNG"
    assert load_results(profile)["images"]["01_loss"]["stage"] == "captioning"
    assert figure_dir(get_profile("tiny")) == runs_dir / "tiny" / "figures"
    with pytest.raises(ValueError, match="file stem"):
        save_figure(fig, profile, "../escape")


def test_kernel_choice():
    assert pipeline.choose_kernel("no-such-kernel-xyz") == "python3"


def test_a_run_never_writes_tracked_files_and_publishing_is_explicit(runs_dir, tmp_path, monkeypatch):
    """Figures and the report of any run stay under runs/; only `publish_results` (make readme) touches the
    README and figures/."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gill_lite import figures, report
    from gill_lite.config import REPO_ROOT

    monkeypatch.delenv("GILL_FIGURES_DIR", raising=False)
    profile = get_profile("tiny")
    fig, ax = plt.subplots(figsize=(1, 1))
    path = figures.save_figure(fig, profile, "06_vist_stories", stage="vist")
    plt.close(fig)
    assert runs_dir in path.parents and REPO_ROOT / "figures" not in path.parents
    record_timing(profile, "00_world", 1.0)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\n")
    before = {p: p.stat().st_mtime_ns for p in (REPO_ROOT / "figures").glob("*.png")}
    write_report(profile)
    assert "old" in readme.read_text()
    assert {p: p.stat().st_mtime_ns for p in (REPO_ROOT / "figures").glob("*.png")} == before
    copied = report.publish_results(profile, readme_path=readme)
    assert copied == [tmp_path / "figures" / "06_vist_stories.png"] and copied[0].read_bytes()[:4] == b"\x89PNG"
    text = readme.read_text()
    assert "old" not in text and "](figures/06_vist_stories.png)" in text


def test_publishing_a_run_folder_of_another_clone_copies_its_figures(runs_dir, tmp_path):
    """A clone's results.json stores its figures as ``runs/<profile>/figures/...``; published with
    ``GILL_RUNS_DIR`` naming that clone's runs/, the figures are that run's, found under GILL_RUNS_DIR."""
    from gill_lite import report

    profile = get_profile("tiny")
    record_timing(profile, "00_world", 1.0)
    figure = runs_dir / "tiny" / "figures" / "06_vist_stories.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    figure.write_bytes(b"\x89PNG other clone")
    path = results_path(profile)
    results = json.loads(path.read_text())
    results["images"] = {"06_vist_stories": {"path": "runs/tiny/figures/06_vist_stories.png", "stage": "vist"}}
    path.write_text(json.dumps(results))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\nold\n<!-- results:end -->\n")
    copied = report.publish_results(profile, readme_path=readme)
    assert copied == [tmp_path / "figures" / "06_vist_stories.png"]
    assert copied[0].read_bytes() == b"\x89PNG other clone"


def test_papermill_parameter_wins_over_the_environment(runs_dir, tmp_path, monkeypatch):
    """The parameters cell reads GILL_PROFILE (nbval); papermill's injected -p PROFILE comes after it and wins."""
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    path = nb_dir / "01_p.ipynb"
    params = nbformat.v4.new_code_cell('import os\nPROFILE = os.environ.get("GILL_PROFILE", "tiny")')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(RECORD.format(stage="p"))])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    monkeypatch.setenv("GILL_PROFILE", "tiny")
    (tmp_path / "out").mkdir()
    pipeline.run_notebook("01_p", nb_dir, tmp_path / "out", "ci", pipeline.choose_kernel(), progress=False)
    assert load_results("ci")["stages"]["p"]["figures"]["profile_seen"] == "ci"
