"""The notebooks' sources are the jupytext percent-format ``notebooks/NN_name.py`` files, paired with the
``.ipynb`` that JupyterLab, nbval and papermill open. Both are committed; these tests keep them in step and
keep the sources clean enough for a linter."""
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
PAIRING = "ipynb,py:percent"


def cells_of(nb) -> list[tuple[str, str, tuple]]:
    """What a reader of the notebook sees of each cell: its type, its text and its tags."""
    return [(c.cell_type, c.source, tuple(c.get("metadata", {}).get("tags", ()))) for c in nb.cells]


def disagreements(source: Path, notebook: Path) -> list[str]:
    """Where the paired ``source`` (.py) and ``notebook`` (.ipynb) differ; empty when they agree."""
    text, nb = jupytext.read(source), nbformat.read(notebook, as_version=4)
    problems = []
    for name, meta in (("source", text.metadata), ("notebook", nb.metadata)):
        if meta.get("jupytext", {}).get("formats") != PAIRING:
            problems.append(f"{name} is not paired as {PAIRING!r}")
    a, b = cells_of(text), cells_of(nb)
    if len(a) != len(b):
        problems.append(f"{len(a)} cells in {source.name}, {len(b)} in {notebook.name}")
    problems += [f"cell {i}: {x[:2]} != {y[:2]}" for i, (x, y) in enumerate(zip(a, b)) if x != y][:3]
    return problems


def test_every_notebook_has_its_source():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"
    assert [p.stem for p in NOTEBOOKS] == [p.stem for p in SOURCES]
    assert not list(NOTEBOOK_DIR.glob("make_*.py")), "notebooks are edited as sources, not written by scripts"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_source_and_notebook_agree(notebook):
    problems = disagreements(notebook.with_suffix(".py"), notebook)
    assert not problems, (f"{notebook.name} and its source disagree ({'; '.join(problems)}): after editing "
                          "one of them outside JupyterLab, run `make notebooks`")


def test_detects_an_edited_source(tmp_path):
    original = NOTEBOOKS[0]
    shutil.copy(original, tmp_path / original.name)
    source = tmp_path / original.with_suffix(".py").name
    text = original.with_suffix(".py").read_text()
    source.write_text(text.replace("# %%\n", "# %%\nx = 'an edit'\n", 1))
    assert disagreements(source, tmp_path / original.name)
    source.write_text(text)
    assert not disagreements(source, tmp_path / original.name)


def test_sources_pass_the_linter():
    ruff = Path(sys.executable).with_name("ruff")
    assert ruff.exists(), f"ruff is missing from {ruff.parent}: `pip install -e '.[dev]'` installs it"
    # pyflakes' checks (unused imports, undefined names, ...) and syntax errors, nothing about style
    done = subprocess.run([str(ruff), "check", "--isolated", "--select", "F,E9", "--output-format", "concise",
                           *map(str, SOURCES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_saving_in_jupyterlab_writes_the_source(tmp_path):
    # JupyterLab saves through the server's contents manager, which jupytext replaces: a student's edit must land
    # in the paired source too, or the next `make notebooks` would lose it
    from jupytext.sync_contentsmanager import build_sync_jupytext_contents_manager_class
    from jupyter_server.services.contents.largefilemanager import LargeFileManager

    original = NOTEBOOKS[0]
    shutil.copy(original, tmp_path / original.name)
    shutil.copy(original.with_suffix(".py"), tmp_path / original.with_suffix(".py").name)
    manager = build_sync_jupytext_contents_manager_class(LargeFileManager)(root_dir=str(tmp_path))
    model = manager.get(original.name)
    model["content"].cells[1].source += "\nEDITED_IN_LAB = True"
    manager.save(model, original.name)
    assert "EDITED_IN_LAB = True" in (tmp_path / original.with_suffix(".py").name).read_text()
    assert not disagreements(tmp_path / original.with_suffix(".py").name, tmp_path / original.name)
