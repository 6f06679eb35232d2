"""The visual prefix: one image-encoder vector becomes a few LM input embeddings (FROMAGe / GILL)."""
from __future__ import annotations

import torch
from torch import nn

PREFIX_KINDS = ("linear", "vocabulary")


class VisualPrefix(nn.Module):
    """``Linear(image_hidden -> n_tokens * lm_dim)``, reshaped to ``n_tokens`` input embeddings.

    GILL feeds the pooled CLIP vector (1024-d for ViT-L/14, before CLIP's own projection) through this single
    linear layer and prepends the 4 resulting vectors to the caption's token embeddings.

    ``vocabulary`` (a ``(V, lm_dim)`` tensor of the LM's frozen input-embedding rows; None is the published
    prefix): each token is instead a softmax mixture of those rows, ``softmax(Linear(image_hidden -> n_tokens *
    V)) @ vocabulary``, so the visual tokens lie among the words the LM has read rather than anywhere in its input
    space (`TrainConfig.visual_prefix`; README, "Does GILL use the story?").

    ``norm``: None leaves the vectors as made; a number rescales each to that norm, as GILL rescales its
    ``[IMG]`` rows to the frozen rows' mean norm (`ImgTokens.rescale_`).
    """

    def __init__(self, image_hidden: int, lm_dim: int, n_tokens: int = 4, norm: float | None = None,
                 vocabulary: torch.Tensor | None = None):
        super().__init__()
        self.n_tokens, self.lm_dim = n_tokens, lm_dim
        if vocabulary is not None and (vocabulary.dim() != 2 or vocabulary.shape[1] != lm_dim):
            raise ValueError(f"vocabulary rows must be (V, {lm_dim}), got {tuple(vocabulary.shape)}")
        width = lm_dim if vocabulary is None else vocabulary.shape[0]
        self.proj = nn.Linear(image_hidden, n_tokens * width)
        self.norm = None if norm is None else float(norm)
        self.register_buffer("vocabulary", None if vocabulary is None else vocabulary.detach().clone(),
                             persistent=False)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """``(N, image_hidden)`` -> ``(N, n_tokens, lm_dim)``."""
        if pooled.dim() != 2 or pooled.shape[1] != self.proj.in_features:
            raise ValueError(f"expected pooled image features (N, {self.proj.in_features}), got {tuple(pooled.shape)}")
        out = self.proj(pooled).view(pooled.shape[0], self.n_tokens, -1)
        if self.vocabulary is not None:
            out = out.float().softmax(-1) @ self.vocabulary.float()
        if self.norm is not None:
            out = out * (self.norm / out.norm(dim=-1, keepdim=True).clamp(min=1e-8))
        return out
