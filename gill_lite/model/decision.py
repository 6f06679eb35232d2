"""The generate-or-retrieve classifier (GILL section 3.3), and its checkpoint.

It reads the ``[IMG0]`` hidden state and, as the published model does, the top retrieval score: the released
head is ``Linear(4096 + 1, 2)`` on ``[IMG0]`` concatenated with the highest score of the retrieval head over the
CC3M index (``logit_scale`` x cosine; GILL's ``models.py``), and its training notebook drops the score only
when the CC3M embeddings are missing, warning that results then differ from the paper. `decision_features`
builds that input; ``DecisionHead(lm_dim, retrieval_score=False)`` is the [IMG0]-only variant.

The head is trained after GILL's other parts, on data they produced (`gill_lite.decision`), so it is saved apart
from them: ``<run_dir>/gill/decision/decision_head.safetensors`` (`decision_dir`, `CHECKPOINT`), the head's
tensors with the training's metadata as JSON.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointMismatchError

# Class indices of the decision head's two logits.
GENERATE, RETRIEVE = 0, 1
CLASSES = ("generate", "retrieve")
CHECKPOINT = "decision_head.safetensors"


class DecisionHead(nn.Module):
    """``Dropout(0.5)`` then ``Linear(lm_dim + 1 -> 2)`` on `decision_features`; logit 0 = generate, 1 = retrieve.

    ``retrieval_score=False``: ``Linear(lm_dim -> 2)`` on the [IMG0] state alone (the published notebook's
    fallback without a retrieval index)."""

    def __init__(self, lm_dim: int, dropout: float = 0.5, retrieval_score: bool = True):
        super().__init__()
        self.lm_dim, self.retrieval_score = lm_dim, retrieval_score
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(lm_dim + int(retrieval_score), len(CLASSES))

    @property
    def in_features(self) -> int:
        return self.fc.in_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, in_features)`` features (`decision_features`) -> ``(N, 2)`` logits (generate, retrieve)."""
        if features.shape[-1] != self.in_features:
            raise ValueError(f"the decision head takes {self.in_features} features ([IMG0] state"
                             f"{' + top retrieval score' if self.retrieval_score else ''}), got {features.shape[-1]}")
        return self.fc(self.dropout(features))


def decision_features(img0_states: torch.Tensor, top_scores: torch.Tensor | None) -> torch.Tensor:
    """The decision head's input: ``(N, lm_dim)`` [IMG0] states next to ``(N,)`` top retrieval scores (the
    retrieval head's logits, ``logit_scale`` x cosine, as the published model reads them) -> ``(N, lm_dim + 1)``;
    ``top_scores`` None -> the states alone."""
    img0_states = img0_states.float()
    if top_scores is None:
        return img0_states
    top_scores = torch.as_tensor(top_scores, dtype=torch.float32, device=img0_states.device).reshape(-1, 1)
    if len(top_scores) != len(img0_states):
        raise ValueError(f"{len(img0_states)} [IMG0] states but {len(top_scores)} retrieval scores")
    return torch.cat([img0_states, top_scores], dim=-1)


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
    state = load_file(str(path))
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        raise CheckpointMismatchError(
            f"{path} holds a decision head of shapes {found}, this model's is {expected} (a head of [IMG0] states "
            f"alone, from before the top retrieval score was an input, must be trained again: notebook 05)")
    head.load_state_dict(state)
    head.eval()
    return read_meta(path)


def load_trained_decision(profile, model) -> bool:
    """Attach the profile's trained decision head to ``model`` if one exists (inference uses it)."""
    path = decision_dir(profile) / CHECKPOINT
    if not path.exists():
        return False
    load_decision_head(model, path)
    return True
