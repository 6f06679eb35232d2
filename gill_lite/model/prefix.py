"""The visual prefix: one image-encoder vector becomes a few LM input embeddings (FROMAGe / GILL)."""
from __future__ import annotations

import torch
from torch import nn


class VisualPrefix(nn.Module):
    """``Linear(image_hidden -> n_tokens * lm_dim)``, reshaped to ``n_tokens`` input embeddings.

    GILL feeds the pooled CLIP vector (1024-d for ViT-L/14, before CLIP's own projection) through this single
    linear layer and prepends the 4 resulting vectors to the caption's token embeddings.
    """

    def __init__(self, image_hidden: int, lm_dim: int, n_tokens: int = 4):
        super().__init__()
        self.n_tokens, self.lm_dim = n_tokens, lm_dim
        self.proj = nn.Linear(image_hidden, n_tokens * lm_dim)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """``(N, image_hidden)`` -> ``(N, n_tokens, lm_dim)``."""
        if pooled.dim() != 2 or pooled.shape[1] != self.proj.in_features:
            raise ValueError(f"expected pooled image features (N, {self.proj.in_features}), got {tuple(pooled.shape)}")
        return self.proj(pooled).view(pooled.shape[0], self.n_tokens, self.lm_dim)
