"""Shared by the make_*.py scripts that write the notebooks: notebooks are committed without outputs."""
from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
from nbformat.v4 import new_notebook

# exactly the kernel `make setup` registers (ipykernel install --name gill-lite --display-name "Python (gill-lite)"):
# JupyterLab rewrites any other kernelspec when it opens a notebook, which marks it modified at once
KERNEL = {"name": "gill-lite", "display_name": "Python (gill-lite)", "language": "python"}


def language_info() -> dict:
    """What the kernel reports as ``language_info``, which JupyterLab also writes into a notebook it opens:
    written in full (from this Python's ipykernel, the kernel's own), a notebook opens unmodified. Its
    ``version`` is this Python's: on another patch release JupyterLab still updates that one field."""
    from ipykernel.ipkernel import IPythonKernel

    return dict(IPythonKernel.language_info)


def write_notebook(path: Path, cells: list) -> None:
    """Write ``cells`` as a notebook with no outputs or execution counts."""
    nb = new_notebook(cells=cells, metadata={"kernelspec": KERNEL, "language_info": language_info()})
    seen: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        # ids from the cell's text (not random): regenerating leaves unchanged cells' ids, and diffs, alone
        base = hashlib.sha1(cell.source.encode()).hexdigest()[:12]
        cell.id, n = base, 1
        while cell.id in seen:  # two cells with the same text
            cell.id, n = f"{base}-{n}", n + 1
        seen.add(cell.id)
    nbformat.write(nb, path)
    print("wrote", path)


def split_at_marker(path: Path, marker: str) -> tuple[list, list] | None:
    """The cells of ``path`` up to and including the markdown cell starting with ``marker``, and those after it."""
    if not path.exists():
        return None
    cells = nbformat.read(path, as_version=4).cells
    marks = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.strip().startswith(marker)]
    return (cells[: marks[0] + 1], cells[marks[0] + 1:]) if marks else None
