"""Saving notebook figures where the report finds them.

    from gill_lite.figures import save_figure
    save_figure(fig, profile, "03_generated_vs_sd", stage="generation")

A run writes only under ``runs/<profile>/figures/`` (``GILL_FIGURES_DIR`` overrides), never into tracked files;
the README's committed copies in ``figures/`` are refreshed only by ``make readme``
(`gill_lite.report.publish_results`).
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
    return Path(profile.run_dir) / "figures"


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
