"""One command reproduces everything: notebooks 00..07 in order under papermill, results.json, REPORT.md.

    gill-lite reproduce --profile tiny              # all notebooks, then the report
    gill-lite reproduce --profile tiny --from 03    # resume at 03_generation after a failure
    gill-lite reproduce --profile ci --only 00_world

Notebooks run with their own directory as working directory (as Jupyter and nbval run them), under the
``gill-lite`` kernel that ``make setup`` installs (or this Python's ``python3`` kernel when it is missing),
with ``-p PROFILE <name>``; ``GILL_PROFILE`` is set to the same name so nothing can disagree. Executed copies go
to ``runs/<profile>/notebooks/``; each notebook's wall time goes to results.json ``timings``. A failing
notebook stops the run with one `PipelineError` naming the notebook, the cell and the error; what finished
is kept, and ``--from`` resumes. Every training stage reuses its finished checkpoint, so a rerun is cheap.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

from gill_lite.config import REPO_ROOT, get_profile
from gill_lite.report import update_readme_results, write_report  # noqa: F401  (public API)
from gill_lite.results import (  # noqa: F401  (public API: notebooks import these from here)
    NOTEBOOKS,
    ResultsSchemaError,
    load_results,
    record_results,
    record_timing,
    validate_results,
)
from gill_lite.scaling import estimate_paper_memory  # noqa: F401  (public API)

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
KERNEL = "gill-lite"


class PipelineError(RuntimeError):
    """A notebook failed (or could not start); the message says which, where, and how to resume."""


def resolve_notebook(name: str, available: list[str]) -> str:
    """``"03"``, ``"03_generation"`` or ``"03_generation.ipynb"`` -> ``"03_generation"``; clear error otherwise."""
    stem = Path(str(name)).name.removesuffix(".ipynb")
    if stem in available:
        return stem
    matches = [n for n in available if n.split("_", 1)[0] == stem or n.split("_", 1)[-1] == stem]
    if len(matches) == 1:
        return matches[0]
    raise PipelineError(f"unknown notebook {name!r}; choose one of: {', '.join(available)}")


def select_notebooks(available: list[str], start_from: str | None = None, only: str | list | None = None) -> list[str]:
    """The notebooks to run: all, those from ``start_from`` on, or ``only`` (a name or a list of names)."""
    if start_from is not None and only is not None:
        raise PipelineError("give either --from or --only, not both")
    if only is not None:
        names = [only] if isinstance(only, str) else list(only)
        chosen = {resolve_notebook(n, available) for n in names}
        return [n for n in available if n in chosen]
    if start_from is not None:
        return available[available.index(resolve_notebook(start_from, available)):]
    return list(available)


def choose_kernel(preferred: str = KERNEL) -> str:
    """The venv's ``gill-lite`` kernel when installed, else ``python3`` (this interpreter's ipykernel)."""
    from jupyter_client.kernelspec import KernelSpecManager

    return preferred if preferred in KernelSpecManager().find_kernel_specs() else "python3"


def _code_cell_number(notebook_path: Path, source: str) -> int | None:
    """1-based position among the source notebook's code cells of the cell with ``source`` (None if not found)."""
    import nbformat

    nb = nbformat.read(notebook_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code, start=1):
        if cell.source == source:
            return i
    return None


def failure_message(name: str, notebook_path: Path, error, executed: Path, profile: str) -> str:
    """One line: which notebook, which cell, which error, where the executed copy is, how to resume."""
    number = _code_cell_number(notebook_path, getattr(error, "source", None) or "")
    where = f"code cell {number}" if number is not None else "a code cell"
    count = getattr(error, "exec_count", None)
    if count is not None:
        where += f" (In [{count}] in the executed copy)"
    ename = getattr(error, "ename", type(error).__name__)
    evalue = str(getattr(error, "evalue", error)).strip().splitlines()
    evalue = evalue[-1] if evalue else ""
    return (f"notebook {name} failed at {where}: {ename}: {evalue} | executed copy: {executed} | "
            f"resume with: gill-lite reproduce --profile {profile} --from {name}")


@contextmanager
def _env(**values):
    """Set environment variables for the duration (kernels inherit them), then restore."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _keep_executed(partial: Path, final: Path) -> None:
    """Move papermill's output into place if it is a complete notebook (after success or a cell error)."""
    import nbformat

    if not partial.exists():
        return
    try:
        nbformat.read(partial, as_version=4)
    except Exception:  # interrupted mid-write: not a notebook, drop it
        partial.unlink()
        return
    os.replace(partial, final)


def run_notebook(name: str, notebooks_dir: Path, out_dir: Path, profile: str, kernel: str,
                 parameters: dict | None = None, progress: bool = True) -> float:
    """Execute one notebook with papermill; return its wall seconds or raise `PipelineError`."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = notebooks_dir / f"{name}.ipynb"
    final = out_dir / f"{name}.ipynb"
    partial = out_dir / f".{name}.partial.ipynb"  # papermill rewrites its output after every cell
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source), str(partial), parameters={"PROFILE": profile, **(parameters or {})},
            kernel_name=kernel, cwd=str(notebooks_dir), log_output=False,
            progress_bar={"desc": f"  {name}", "leave": False, "position": 1} if progress else False,
        )
    except PapermillExecutionError as err:
        _keep_executed(partial, final)
        raise PipelineError(failure_message(name, source, err, final, profile)) from None
    except KeyboardInterrupt:
        _keep_executed(partial, final)
        raise
    except Exception as err:  # the kernel died, a timeout, a bad notebook file
        _keep_executed(partial, final)
        raise PipelineError(failure_message(name, source, err, final, profile)) from err
    _keep_executed(partial, final)
    return time.perf_counter() - start


def reproduce(profile_name: str, start_from: str | None = None, only: str | list | None = None,
              notebooks_dir: str | os.PathLike | None = None, notebooks: list[str] | None = None,
              kernel: str | None = None, parameters: dict | None = None, report: bool = True,
              progress: bool = True) -> dict[str, float]:
    """Run the notebooks in order under papermill; return ``{notebook: wall seconds}`` of those run.

    ``notebooks_dir`` defaults to the repo's ``notebooks/`` with `NOTEBOOKS`; another folder runs its own
    ``*.ipynb`` in name order (tests). ``start_from`` / ``only`` take a name or its number (``"03"``).
    Writes executed copies to ``runs/<profile>/notebooks/``, timings to results.json and, at the end (or
    after a failure, with what was finished), ``REPORT.md``. Raises `PipelineError` on the first failure.
    """
    from tqdm.auto import tqdm

    profile = get_profile(profile_name)
    notebooks_dir = Path(notebooks_dir).resolve() if notebooks_dir else NOTEBOOKS_DIR
    if notebooks is None:
        if notebooks_dir == NOTEBOOKS_DIR:
            notebooks = list(NOTEBOOKS)
        else:
            notebooks = sorted(p.stem for p in notebooks_dir.glob("*.ipynb"))
    chosen = select_notebooks(notebooks, start_from, only)
    missing = [n for n in chosen if not (notebooks_dir / f"{n}.ipynb").exists()]
    if missing:
        raise PipelineError(f"notebook(s) not found in {notebooks_dir}: {', '.join(m + '.ipynb' for m in missing)}")
    kernel = kernel or choose_kernel()
    out_dir = profile.run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    bar = tqdm(chosen, desc=f"reproduce {profile.name}", unit="notebook", disable=not progress,
               bar_format="{desc}: {n_fmt}/{total_fmt} notebooks |{bar}| elapsed {elapsed} {postfix}")
    try:
        with _env(GILL_PROFILE=profile.name, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1")):
            for name in bar:
                bar.set_postfix_str(f"running {name}")
                seconds = run_notebook(name, notebooks_dir, out_dir, profile.name, kernel, parameters, progress)
                timings[name] = seconds
                record_timing(profile, name, seconds)
                bar.write(f"{name}: {seconds:.1f} s")
            bar.set_postfix_str("done", refresh=True)
    finally:
        bar.close()
        if report and timings:  # whatever finished is reported, even when a later notebook failed
            try:
                write_report(profile)
            except Exception as err:  # never hide the notebook's own error behind a report problem
                print(f"warning: could not write the report: {err}")
    return timings
