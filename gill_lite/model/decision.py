"""The generate-or-retrieve classifier on the ``[IMG0]`` hidden state (GILL section 3.3), and its checkpoint.

The head is trained after GILL's other parts, on data they produced (`gill_lite.decision`), so it is saved apart
from them: ``<run_dir>/gill/decision/decision_head.safetensors`` (`decision_dir`, `CHECKPOINT`), the head's
tensors with the training's metadata as JSON.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

# Class indices of the decision head's two logits.
GENERATE, RETRIEVE = 0, 1
CLASSES = ("generate", "retrieve")
CHECKPOINT = "decision_head.safetensors"


class DecisionHead(nn.Module):
    """``Dropout(0.5)`` then ``Linear(lm_dim -> 2)``; logit 0 = generate, logit 1 = retrieve."""

    def __init__(self, lm_dim: int, dropout: float = 0.5):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(lm_dim, len(CLASSES))

    def forward(self, img0_state: torch.Tensor) -> torch.Tensor:
        """``(N, lm_dim)`` [IMG0] states -> ``(N, 2)`` logits (generate, retrieve)."""
        return self.fc(self.dropout(img0_state))


def decision_dir(profile) -> Path:
    """Where a profile keeps its trained decision head: ``<run_dir>/gill/decision``."""
    return Path(profile.run_dir) / "gill" / "decision"


def head_of(model):
    """The decision head of a GillModel (``model.decision``), or ``model`` itself when it is the head."""
    head = getattr(model, "decision", None)
    return head if isinstance(head, nn.Module) else model


def save_decision_head(head, path, meta: dict) -> None:
    """Write ``head``'s tensors to ``path`` (safetensors), ``meta`` as JSON in its metadata."""
    from gill_lite.io import atomic_save_file

    atomic_save_file(dict(head.state_dict()), path, metadata={"meta": json.dumps(meta)})


def read_meta(path) -> dict:
    """The metadata `save_decision_head` wrote into ``path``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("meta", "{}"))


def load_decision_head(model_or_head, path) -> dict:
    """Load a saved head into ``model_or_head`` (a GillModel or its head); returns the checkpoint's metadata."""
    from safetensors.torch import load_file

    head = head_of(model_or_head)
    head.load_state_dict(load_file(str(path)))
    head.eval()
    return read_meta(path)


def load_trained_decision(profile, model) -> bool:
    """Attach the profile's trained decision head to ``model`` if one exists (inference uses it)."""
    path = decision_dir(profile) / CHECKPOINT
    if not path.exists():
        return False
    load_decision_head(model, path)
    return True
