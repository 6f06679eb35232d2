"""GILLMapper: from the 8 ``[IMG]`` states to the generator's text-encoder space (GILL section 3.2)."""
from __future__ import annotations

import warnings

import torch
from torch import nn


class GillMapper(nn.Module):
    """``Linear(lm_dim -> d_model)``, an encoder-decoder Transformer whose decoder reads ``n_queries`` learned
    queries, then ``Linear(d_model -> out_dim)``.

    Input: the LM's last-layer hidden states at the ``[IMG0..7]`` positions plus those tokens' input embeddings
    (summed, as the published ``GILLMapper``). Output: ``(N, n_queries, out_dim)``, the shape of the generator's
    text-encoder output (77 x 768 for Stable Diffusion v1.5), fed to the UNet as ``prompt_embeds``.
    Pre-norm, no dropout, as published.
    """

    def __init__(self, lm_dim: int, out_dim: int, n_queries: int, d_model: int = 512, heads: int = 4,
                 encoder_layers: int = 4, decoder_layers: int = 4, ffn: int = 2048):
        super().__init__()
        self.proj_in = nn.Linear(lm_dim, d_model)
        with warnings.catch_warnings():  # "enable_nested_tensor ... norm_first": a fast path we do not need
            warnings.simplefilter("ignore", UserWarning)
            self.transformer = nn.Transformer(
                d_model=d_model, nhead=heads, num_encoder_layers=encoder_layers, num_decoder_layers=decoder_layers,
                dim_feedforward=ffn, dropout=0.0, batch_first=True, norm_first=True,
            )
        self.queries = nn.Parameter(torch.randn(1, n_queries, d_model) * d_model ** -0.5)
        self.proj_out = nn.Linear(d_model, out_dim)

    def forward(self, img_states: torch.Tensor, img_embeds: torch.Tensor) -> torch.Tensor:
        """``img_states`` (N, n_img, lm_dim) + ``img_embeds`` (N or 1, n_img, lm_dim) -> (N, n_queries, out_dim)."""
        x = self.proj_in(img_states + img_embeds)
        x = self.transformer(x, self.queries.expand(x.shape[0], -1, -1))
        return self.proj_out(x)
