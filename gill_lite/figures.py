"""Saving notebook figures where the report (and, at ``tiny``, the README) finds them.

    from gill_lite.figures import save_figure
    save_figure(fig, profile, "03_generated_vs_sd", stage="generation")

The ``tiny`` run writes to the committed ``figures/`` folder (the README shows those images); every other
profile, and a tiny run whose runs folder was moved by ``GILL_RUNS_DIR`` (tests), writes to
``runs/<profile>/figures/``. ``GILL_FIGURES_DIR`` overrides both.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from gill_lite.config import REPO_ROOT
from gill_lite.io import atomic_path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def figure_dir(profile) -> Path:
    """Where ``profile``'s figures go (see the module docstring)."""
    if os.environ.get("GILL_FIGURES_DIR"):
        return Path(os.environ["GILL_FIGURES_DIR"])
    run_dir = Path(profile.run_dir)
    if profile.name == "tiny" and run_dir.resolve() == (REPO_ROOT / "runs" / "tiny").resolve():
        return REPO_ROOT / "figures"
    return run_dir / "figures"


def save_figure(fig, profile, name: str, stage: str | None = None, dpi: int = 100) -> Path:
    """Write a matplotlib figure as ``<figure_dir>/<name>.png`` (atomically) and register it in results.json.

    ``name`` is a file stem (letters, digits, ``_.-``); prefix it with the notebook number (``03_samples``)
    so names stay unique across notebooks. Returns the PNG's path.
    """
    from gill_lite.results import record_image

    if name.endswith(".png"):
        name = name[:-4]
    if not _NAME.match(name):
        raise ValueError(f"figure name {name!r} must be a file stem of letters, digits and _.- (no folders)")
    path = figure_dir(profile) / f"{name}.png"
    with atomic_path(path) as tmp:
        # format given explicitly: the temporary file's suffix is .tmp
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    try:
        stored = str(path.resolve().relative_to(REPO_ROOT))  # portable across clones
    except ValueError:
        stored = str(path.resolve())
    record_image(profile, name, stored, stage)
    return path
