"""The visual prefix: one image-encoder vector becomes a few LM input embeddings (FROMAGe / GILL)."""
from __future__ import annotations

import torch
from torch import nn


class VisualPrefix(nn.Module):
    """``Linear(image_hidden -> n_tokens * lm_dim)``, reshaped to ``n_tokens`` input embeddings.

    GILL feeds the pooled CLIP vector (1024-d for ViT-L/14, before CLIP's own projection) through this single
    linear layer and prepends the 4 resulting vectors to the caption's token embeddings.

    ``norm``: None (published) leaves the vectors as the layer makes them; a number rescales each to that norm, as
    GILL rescales its ``[IMG]`` rows to the frozen rows' mean norm (`ImgTokens.rescale_`), so the visual tokens
    sit among the LM's own input embeddings instead of far outside them.
    """

    def __init__(self, image_hidden: int, lm_dim: int, n_tokens: int = 4, norm: float | None = None):
        super().__init__()
        self.n_tokens, self.lm_dim = n_tokens, lm_dim
        self.proj = nn.Linear(image_hidden, n_tokens * lm_dim)
        self.norm = None if norm is None else float(norm)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """``(N, image_hidden)`` -> ``(N, n_tokens, lm_dim)``."""
        if pooled.dim() != 2 or pooled.shape[1] != self.proj.in_features:
            raise ValueError(f"expected pooled image features (N, {self.proj.in_features}), got {tuple(pooled.shape)}")
        out = self.proj(pooled).view(pooled.shape[0], self.n_tokens, self.lm_dim)
        if self.norm is not None:
            out = out * (self.norm / out.norm(dim=-1, keepdim=True).clamp(min=1e-8))
        return out
