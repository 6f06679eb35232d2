"""The generate-or-retrieve classifier on the ``[IMG0]`` hidden state (GILL section 3.3)."""
from __future__ import annotations

import torch
from torch import nn

# Class indices of the decision head's two logits.
GENERATE, RETRIEVE = 0, 1
CLASSES = ("generate", "retrieve")


class DecisionHead(nn.Module):
    """``Dropout(0.5)`` then ``Linear(lm_dim -> 2)``; logit 0 = generate, logit 1 = retrieve."""

    def __init__(self, lm_dim: int, dropout: float = 0.5):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(lm_dim, len(CLASSES))

    def forward(self, img0_state: torch.Tensor) -> torch.Tensor:
        """``(N, lm_dim)`` [IMG0] states -> ``(N, 2)`` logits (generate, retrieve)."""
        return self.fc(self.dropout(img0_state))
