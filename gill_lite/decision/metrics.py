"""Agreement and classification metrics for the decision set (numpy only, no sklearn).

Labels are strings ("gen", "ret", "same"); a prediction outside ``labels`` (a judge's "same" when the truth is
gen/ret) counts as a miss for the true class and as a false positive for no class.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """``m[i, j]`` = how many examples of true ``labels[i]`` were predicted ``labels[j]``."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items, y_pred {len(y_pred)}")
    index = {label: i for i, label in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        if t in index and p in index:
            m[index[t], index[p]] += 1
    return m


def f1_per_label(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """F1 of each label (0 when the label is neither true nor predicted anywhere, as torchmetrics does)."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items, y_pred {len(y_pred)}")
    out = {}
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(y_true, y_pred))
        fp = sum(t != label and p == label for t, p in zip(y_true, y_pred))
        fn = sum(t == label and p != label for t, p in zip(y_true, y_pred))
        out[label] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return out


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean of the per-label F1 scores (the paper's metric for the decision classifier)."""
    scores = f1_per_label(y_true, y_pred, labels)
    return float(np.mean(list(scores.values())))


def fleiss_kappa(votes: Sequence[Sequence[str]], categories: Sequence[str]) -> float:
    """Fleiss' kappa of ``votes`` (one row per item, one vote per rater; every row has the same raters).

    1 = perfect agreement, 0 = what independent raters with the same label frequencies would reach.
    """
    if len(votes) == 0:
        raise ValueError("no votes")
    n_raters = len(votes[0])
    if n_raters < 2 or any(len(row) != n_raters for row in votes):
        raise ValueError("every item needs the same number (>= 2) of votes")
    counts = np.array([[Counter(row)[c] for c in categories] for row in votes], dtype=np.float64)
    if not np.all(counts.sum(1) == n_raters):
        raise ValueError(f"a vote outside {list(categories)}")
    p_item = ((counts * (counts - 1)).sum(1)) / (n_raters * (n_raters - 1))
    p_cat = counts.sum(0) / counts.sum()
    p_bar, p_e = p_item.mean(), (p_cat**2).sum()
    return float((p_bar - p_e) / (1 - p_e)) if p_e < 1 else 1.0


def pairwise_agreement(votes: Sequence[Sequence[str]]) -> float:
    """Share of (item, rater pair) where the two raters voted the same."""
    agree = total = 0
    for row in votes:
        for i in range(len(row)):
            for j in range(i + 1, len(row)):
                agree += row[i] == row[j]
                total += 1
    return agree / total if total else float("nan")
