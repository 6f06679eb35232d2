"""Train GILL's decision head (``Dropout(0.5)`` + ``Linear``) on the ``[IMG0]`` states and top retrieval scores
of confident prompts (`gill_lite.model.decision.decision_features`, as the published head reads them).

As in the paper and the published notebook: full-batch AdamW (lr 1e-3, no weight decay), ``steps`` steps, the
first ``n_train`` confident examples train and the rest validate; macro F1 on the validation part. Two options
(``DecisionConfig.standardize`` / ``.balanced``, on by default; both off = the published recipe) change how the
head is trained, not what it is: see `train_decision_head`. Class ids
follow `gill_lite.model.decision`: 0 = generate ("gen"), 1 = retrieve ("ret").

The trained head is saved apart from the other trainable parts, as
``<run_dir>/gill/decision/decision_head.safetensors`` (+ ``metrics.json``), because it is trained after them
on data they produced; `fit_decision` finds a finished checkpoint for the same data and settings and loads it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

# the head's checkpoint and its place belong to the model (the pipeline loads it without this package); they
# stay importable from here for this package's callers
from gill_lite.model.decision import (  # noqa: F401
    CHECKPOINT,
    decision_dir,
    head_of,
    load_decision_head,
    load_trained_decision,
    read_meta,
    save_decision_head,
)

from .judges import LABELS
from .metrics import confusion_matrix, f1_per_label, macro_f1


def encode_labels(labels: Sequence[str]):
    import torch

    bad = sorted({lab for lab in labels if lab not in LABELS})
    if bad:
        raise ValueError(f"labels must be {LABELS}, got {bad}")
    return torch.tensor([LABELS.index(lab) for lab in labels], dtype=torch.long)


def split_train_val(n: int, n_train: int) -> tuple[list[int], list[int]]:
    """The first ``n_train`` train, the rest validate; with too few examples, keep a third for validation."""
    if n < 2:
        raise ValueError(f"need at least 2 confident examples, got {n}")
    if n_train >= n:
        n_train = max(1, (2 * n) // 3)
        print(f"only {n} confident examples: training on the first {n_train}, validating on {n - n_train}")
    return list(range(n_train)), list(range(n_train, n))


def predict_proba(head, x):
    """Softmax probabilities (N, 2) = (generate, retrieve), in eval mode (no dropout)."""
    import torch

    was_training = head.training
    head.eval()
    with torch.no_grad():
        p = torch.softmax(head(x.float()), dim=-1)
    head.train(was_training)
    return p


def predict_labels(head, x) -> list[str]:
    return [LABELS[i] for i in predict_proba(head, x).argmax(-1).tolist()]


def evaluate(head, x, labels: Sequence[str]) -> dict:
    """Macro F1, accuracy, per-label F1 and the confusion matrix (rows = truth gen/ret, columns = prediction)."""
    pred = predict_labels(head, x)
    return {
        "macro_f1": macro_f1(labels, pred, LABELS),
        "accuracy": float(np.mean([a == b for a, b in zip(labels, pred)])) if len(labels) else float("nan"),
        "f1": f1_per_label(labels, pred, LABELS),
        "confusion": confusion_matrix(labels, pred, LABELS).tolist(),
        "n": len(labels),
    }


def train_decision_head(head, x, labels: Sequence[str], steps: int = 2000, lr: float = 1e-3, seed: int = 0,
                        x_val=None, labels_val: Sequence[str] | None = None, eval_every: int = 100,
                        progress: bool = True, standardize: bool = False, balanced: bool = False) -> dict:
    """Re-initialise ``head`` (seeded) and train it full-batch; returns the history (loss, train/val F1).

    ``standardize``: train on per-dimension standardised states, then fold the mean and scale into the head's
    Linear layer, so the trained head is still ``Dropout + Linear`` on raw [IMG0] states (at eval time the two
    are the same function). LM states share a large common direction (at tiny: norm ~15, per-dimension std
    ~0.1) that makes a raw linear head crawl. ``balanced``: class-weighted cross-entropy (inverse frequency),
    since the metric is macro F1 and the classes can be far apart.
    """
    import torch
    from tqdm.auto import tqdm

    if steps < 1:
        raise ValueError("steps must be >= 1")
    y = encode_labels(labels)
    x = x.float()
    mean, scale = (x.mean(0), x.std(0).clamp_min(1e-6)) if standardize else (torch.zeros(x.shape[1]), torch.ones(x.shape[1]))
    z = (x - mean) / scale
    z_val = (x_val.float() - mean) / scale if x_val is not None else None
    counts = torch.bincount(y, minlength=len(LABELS)).float()
    weight = (counts.sum() / counts.clamp_min(1) / len(LABELS)) if balanced else None
    history = {"step": [], "loss": [], "train_f1": [], "val_f1": []}
    params = list(head.parameters())
    frozen = [not p.requires_grad for p in params]  # a loaded GillModel may come with its parts frozen
    for p in params:
        p.requires_grad_(True)
    with torch.random.fork_rng(devices=[]), torch.enable_grad():  # seeded init and dropout, global RNG untouched
        torch.manual_seed(seed)
        for m in head.modules():
            if m is not head and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0, eps=1e-8)
        head.train()
        for step in tqdm(range(steps), desc="decision head", disable=not progress, mininterval=1.0):
            loss = torch.nn.functional.cross_entropy(head(z), y, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % eval_every == 0 or step == steps - 1:
                history["step"].append(step)
                history["loss"].append(float(loss.detach()))
                history["train_f1"].append(macro_f1(labels, predict_labels(head, z), LABELS))
                if z_val is not None and labels_val is not None and len(labels_val):
                    history["val_f1"].append(macro_f1(labels_val, predict_labels(head, z_val), LABELS))
    if standardize:
        fold_standardization(head, mean, scale)
    head.eval()
    for p, was_frozen in zip(params, frozen):
        p.requires_grad_(not was_frozen)
    return history


def fold_standardization(head, mean, scale) -> None:
    """Make ``head`` (one Linear, after dropout) read raw states: ``W z + b`` with ``z = (x - mean) / scale``
    equals ``(W / scale) x + (b - W (mean / scale))``."""
    import torch

    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    if len(linears) != 1:
        raise ValueError(f"can only fold the standardisation into a head with one Linear layer, found {len(linears)}")
    fc = linears[0]
    with torch.no_grad():
        w = fc.weight / scale
        fc.bias -= fc.weight @ (mean / scale)
        fc.weight.copy_(w)


def data_fingerprint(x, labels: Sequence[str], cfg) -> str:
    """Hash of the training data and settings: a checkpoint only counts for the same of both."""
    h = hashlib.sha1(np.ascontiguousarray(x.float().cpu().numpy()).tobytes())
    h.update(json.dumps([list(labels), cfg.n_train, cfg.steps, cfg.lr, cfg.dropout, cfg.seed, cfg.standardize,
                          cfg.balanced]).encode())
    return h.hexdigest()[:16]


IMG0_ONLY_FILE = "img0_only.json"


def fit_img0_only(profile, img0_states, labels: Sequence[str], progress: bool = False, out_dir=None,
                  retrain: bool = False) -> dict:
    """The same training on the ``[IMG0]`` states alone (the published notebook's fallback without retrieval
    scores), for comparison: validation metrics of a head that is not used.

    The metrics are kept in ``img0_only.json`` beside the decision head (``out_dir``, default `decision_dir`)
    with the data's fingerprint, and read back for the same states, labels and settings (``retrain``: train
    anyway)."""
    from gill_lite.io import atomic_write_json
    from gill_lite.model.decision import DecisionHead

    cfg = profile.decision
    if len(img0_states) != len(labels):
        raise ValueError(f"{len(img0_states)} [IMG0] states but {len(labels)} labels")
    path = Path(out_dir or decision_dir(profile)) / IMG0_ONLY_FILE
    fingerprint = data_fingerprint(img0_states, labels, cfg)
    if path.exists() and not retrain:
        saved = json.loads(path.read_text())
        if saved.get("fingerprint") == fingerprint:
            return saved["val"]
    train_idx, val_idx = split_train_val(len(labels), cfg.n_train)
    head = DecisionHead(img0_states.shape[1], cfg.dropout, retrieval_score=False)
    train_decision_head(head, img0_states[train_idx], [labels[i] for i in train_idx], cfg.steps, cfg.lr, cfg.seed,
                        progress=progress, standardize=cfg.standardize, balanced=cfg.balanced)
    val = evaluate(head, img0_states[val_idx], [labels[i] for i in val_idx])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"fingerprint": fingerprint, "val": val})
    return val


@dataclass
class DecisionResult:
    """What `fit_decision` returns: validation metrics, the training history, and whether it was loaded."""

    val: dict
    train: dict
    history: dict = field(default_factory=dict)
    loaded: bool = False
    path: Path | None = None
    n_train: int = 0
    n_val: int = 0


def fit_decision(profile, model, features, labels: Sequence[str], out_dir=None, retrain: bool = False,
                 progress: bool = True) -> DecisionResult:
    """Find a finished decision head for these confident examples and settings, else train and save one.

    ``features``: (N, head inputs) what the head reads for the confident prompts (`Collection.features`: the
    [IMG0] state and the top retrieval score), in prompt order; ``labels``: "gen"/"ret".
    """
    cfg = profile.decision
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    head = head_of(model)
    train_idx, val_idx = split_train_val(len(labels), cfg.n_train)
    x_tr, x_va = features[train_idx], features[val_idx]
    y_tr, y_va = [labels[i] for i in train_idx], [labels[i] for i in val_idx]
    path = Path(out_dir or decision_dir(profile)) / CHECKPOINT
    fingerprint = data_fingerprint(features, labels, cfg)
    if path.exists() and not retrain and read_meta(path).get("fingerprint") == fingerprint:
        print(f"Found a trained decision head, loading {path}")
        meta = load_decision_head(head, path)
        return DecisionResult(evaluate(head, x_va, y_va), evaluate(head, x_tr, y_tr), meta.get("history", {}),
                              True, path, len(train_idx), len(val_idx))
    history = train_decision_head(head, x_tr, y_tr, cfg.steps, cfg.lr, cfg.seed, x_va, y_va, progress=progress,
                                  standardize=cfg.standardize, balanced=cfg.balanced)
    result = DecisionResult(evaluate(head, x_va, y_va), evaluate(head, x_tr, y_tr), history, False, path,
                            len(train_idx), len(val_idx))
    meta = {"fingerprint": fingerprint, "steps": cfg.steps, "lr": cfg.lr, "n_train": len(train_idx),
            "standardize": cfg.standardize, "balanced": cfg.balanced,
            "n_val": len(val_idx), "seed": cfg.seed, "val": result.val, "history": history}
    save_decision_head(head, path, meta)
    from gill_lite.io import atomic_write_json

    atomic_write_json(path.parent / "metrics.json", {k: meta[k] for k in meta if k != "history"})
    return result
