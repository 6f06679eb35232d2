"""Committed notebooks carry no outputs or execution counts (CI executes them; diffs stay readable)."""
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def dirty_cells(path) -> list[int]:
    """Indices of code cells that hold outputs or an execution count."""
    nb = nbformat.read(path, as_version=4)
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_committed_clean(path):
    assert not dirty_cells(path), f"{path.name}: clear outputs of cells {dirty_cells(path)}"


def test_detects_outputs(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells[0].execution_count = 1
    nbformat.write(nb, tmp_path / "x.ipynb")
    assert dirty_cells(tmp_path / "x.ipynb") == [0]


def registered_kernel() -> dict:
    """The kernel `make setup` registers, read from the Makefile's ``ipykernel install`` line."""
    import re

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    name = re.search(r"^KERNEL := (\S+)$", makefile, re.M).group(1)
    display = re.search(r'ipykernel install .*--display-name "([^"]+)"', makefile).group(1)
    return {"name": name, "display_name": display, "language": "python"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_names_the_registered_kernel(path):
    # JupyterLab rewrites any other kernelspec on open, and the notebook shows as modified before anyone types
    assert dict(nbformat.read(path, as_version=4).metadata.kernelspec) == registered_kernel()
