"""Contrastive retrieval heads: the ``[IMG0]`` state and the image vector in one shared, normalised space."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class RetrievalHeads(nn.Module):
    """Text side ``Linear(lm_dim -> dim)`` on the [IMG0] hidden state; image side ``Linear(image_hidden -> dim)``
    on the pooled image vector; both L2-normalised. ``logit_scale`` starts at ln(1/0.07), as in CLIP."""

    MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's clamp: keeps the temperature from collapsing

    def __init__(self, lm_dim: int, image_hidden: int, dim: int):
        super().__init__()
        self.text = nn.Linear(lm_dim, dim)
        self.image = nn.Linear(image_hidden, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed_text(self, img0_state: torch.Tensor) -> torch.Tensor:
        """``(N, lm_dim)`` -> ``(N, dim)``, unit norm."""
        return F.normalize(self.text(img0_state), dim=-1)

    def embed_image(self, pooled: torch.Tensor) -> torch.Tensor:
        """``(N, image_hidden)`` -> ``(N, dim)``, unit norm."""
        return F.normalize(self.image(pooled), dim=-1)

    def scale(self) -> torch.Tensor:
        """The multiplicative logit scale ``exp(logit_scale)``, clamped at 100."""
        return self.logit_scale.clamp(max=self.MAX_LOGIT_SCALE).exp()
