"""Pictures: the matplotlib figures the notebooks and the report show, and saving them where the report finds them.

Each drawing function returns a bare matplotlib Figure (no pyplot state, safe in tests and scripts); `save_figure`
writes one as a PNG and registers it in results.json::

    from gill_lite.figures import image_grid, save_figure
    save_figure(image_grid(images, captions), profile, "03_generated_vs_sd", stage="generation")

A run writes only under ``runs/<profile>/figures/`` (``GILL_FIGURES_DIR`` overrides), never into tracked files;
the README's committed copies in ``figures/`` are refreshed only by ``make readme``
(`gill_lite.report.publish_results`). (The numbers a notebook records are its metrics: `gill_lite.results`.)
"""
from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import numpy as np

from gill_lite.config import REPO_ROOT
from gill_lite.io import atomic_path
from gill_lite.paper_numbers import ANNOTATOR_F1
from gill_lite.results import record_image

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


# ---------------------------------------------------------------------------------------- drawing
def _figure(**kwargs):
    from matplotlib.figure import Figure  # a bare Figure: no pyplot state, safe in tests and scripts

    return Figure(**kwargs)


def image_grid(images, titles=None, ncols: int = 8, size: float = 1.5, title_width: int = 22, suptitle: str | None = None):
    """A grid of uint8 ``(H, W, 3)`` images, each with an optional (wrapped) title."""
    images = list(images)
    if not images:
        raise ValueError("image_grid needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(images)} images but {len(titles)} titles")
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    fig = _figure(figsize=(ncols * size, nrows * (size + (0.5 if titles else 0.0))), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < len(images):
            ax.imshow(np.asarray(images[i]), interpolation="nearest")
            if titles is not None:
                ax.set_title(textwrap.fill(str(titles[i]), title_width), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def story_strip(images, captions, title: str | None = None, size: float = 2.0):
    """A story's frames side by side, each captioned (five frames for ShapeStories / VIST)."""
    return image_grid(images, captions, ncols=len(images), size=size, title_width=24, suptitle=title)


def attribute_histograms(shapes_by_group: dict, title: str | None = None):
    """Bar charts of how often each attribute value occurs, one bar colour per group (e.g. corpus split).

    ``shapes_by_group`` maps a group name to a list of `Shape`s.
    """
    from gill_lite.world.attributes import ATTRIBUTES, VALUES

    fig = _figure(figsize=(14, 2.8), layout="constrained")
    axes = fig.subplots(1, len(ATTRIBUTES))
    width = 0.8 / max(1, len(shapes_by_group))
    for ax, attr in zip(axes, ATTRIBUTES):
        values = VALUES[attr]
        for g, (group, shapes) in enumerate(shapes_by_group.items()):
            n = max(1, len(shapes))
            share = [sum(getattr(s, attr) == v for s in shapes) / n for v in values]
            ax.bar(np.arange(len(values)) + g * width, share, width, label=group)
        ax.set_xticks(np.arange(len(values)) + 0.4 - width / 2, values, rotation=60, fontsize=7)
        ax.set_title(attr)
        ax.set_ylabel("share")
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------- decision (05)
def confusion_plot(matrix, labels, title: str = "confusion matrix", xlabel: str = "predicted", ylabel: str = "true"):
    """A confusion matrix (rows = truth, columns = prediction) with the counts written in the cells."""
    m = np.asarray(matrix)
    fig = _figure(figsize=(3.2, 2.8), layout="constrained")
    ax = fig.subplots()
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_title(title, fontsize=9)
    return fig


def decision_training_plot(history: dict, ceiling: float | None = None, paper_ceiling: float | None = ANNOTATOR_F1):
    """Macro F1 of the decision head over training (train and validation), with the judges' ceiling."""
    fig = _figure(figsize=(5, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot(history["step"], history["train_f1"], label="train F1")
    if history.get("val_f1"):
        ax.plot(history["step"], history["val_f1"], label="validation F1")
    if ceiling is not None:
        ax.axhline(ceiling, color="r", linestyle="--", label=f"judges' ceiling ({ceiling:.3f})")
    if paper_ceiling is not None:
        ax.axhline(paper_ceiling, color="grey", linestyle=":", label=f"paper's annotators ({paper_ceiling})")
    ax.set_xlabel("step")
    ax.set_ylabel("macro F1")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    return fig


def label_counts_plot(counts: dict, paper: dict | None = None, title: str = "labels after the confidence rule"):
    """Bars of how many prompts got each label (and were dropped), beside the paper's counts if given."""
    keys = list(counts)
    fig = _figure(figsize=(4, 2.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(keys))
    width = 0.4 if paper else 0.8
    ax.bar(x - (width / 2 if paper else 0), [counts[k] for k in keys], width, label="here")
    if paper:
        ax.bar(x + width / 2, [paper.get(k, 0) for k in keys], width, label="paper")
        ax.legend(fontsize=7)
    ax.set_xticks(x, keys)
    ax.set_ylabel("prompts")
    ax.set_title(title, fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------- GILL stages (01-04)
def loss_curve(log: list[dict], keys=None, title: str | None = None, smooth: int = 20):
    """Training losses from a JSONL loss log (one dict per step; `gill_lite.train.stage_log`), moving-averaged
    over ``smooth`` steps. ``keys``: which losses (default: every key other than step/loss/lr/grad_norm)."""
    if not log:
        raise ValueError("loss_curve needs a non-empty log")
    keys = keys or [k for k in log[0] if k not in ("step", "loss", "lr", "grad_norm")]
    fig = _figure(figsize=(5, 3), layout="constrained")
    ax = fig.subplots()
    steps = np.array([r["step"] for r in log])
    for k in keys:
        values = np.array([r[k] for r in log], dtype=float)
        w = max(1, min(smooth, len(values)))
        avg = np.convolve(values, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1 :], avg, label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def image_rows(rows: dict, titles=None, size: float = 1.3):
    """Several rows of images with one label per row (e.g. truth / GILL / SD baseline), ``rows``: label -> images.
    ``titles``: one title per column (shown above the first row)."""
    labels = list(rows)
    ncols = max(len(v) for v in rows.values())
    fig = _figure(figsize=(ncols * size + 1.0, len(labels) * (size + 0.1) + (0.6 if titles else 0)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(labels), ncols, squeeze=False))
    for r, label in enumerate(labels):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(rows[label]):
                ax.imshow(np.asarray(rows[label][c]), interpolation="nearest")
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(textwrap.fill(str(label), 16), fontsize=7)
            if r == 0 and titles is not None and c < len(titles):
                ax.set_title(textwrap.fill(str(titles[c]), 18), fontsize=6)
    return fig


def generator_samples(truth, generated, captions, size: float = 1.3):
    """Generated images under the ground-truth renders of the same captions (the stand-in generator's figure)."""
    return image_rows({"ground truth": truth, "generated": generated}, titles=captions, size=size)
