"""GILL's four losses (gill_spec.md, 'Losses'), each a plain function of tensors.

- `lm_loss`: next-token cross-entropy with ``-100`` as ignore (captioning and [IMG] prediction);
- `contrastive_loss`: symmetric InfoNCE between [IMG0] text embeddings and image embeddings, over the batch
  all-gathered from every process;
- `generation_loss`: per-token Euclidean distance between the mapper output and the generator's text-encoder
  output, averaged over tokens and batch.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .distributed import all_gather_with_grad

IGNORE = -100


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Causal LM cross-entropy: ``logits[:, t]`` predicts ``labels[:, t + 1]``; ``-100`` labels are skipped.

    ``logits`` (N, T, V), ``labels`` (N, T) aligned with the inputs. Mean over the labelled tokens.
    """
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not align")
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    return F.cross_entropy(shifted, labels[:, 1:].reshape(-1), ignore_index=IGNORE)


def contrastive_loss(text_emb: torch.Tensor, image_emb: torch.Tensor, logit_scale: torch.Tensor,
                     gather: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``text_emb`` matches row i of ``image_emb`` (both L2-normalised, (N, d)).

    ``logit_scale`` is the multiplicative scale (``exp`` of the learnt log-scale). With ``gather`` the embeddings
    of every process are all-gathered (with gradients) so the negatives are the whole global batch.
    """
    if text_emb.shape != image_emb.shape:
        raise ValueError(f"text {tuple(text_emb.shape)} and image {tuple(image_emb.shape)} embeddings differ")
    if gather:
        text_emb, image_emb = all_gather_with_grad(text_emb), all_gather_with_grad(image_emb)
    logits = logit_scale * text_emb.float() @ image_emb.float().t()
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def generation_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over batch and tokens of ``||pred[n, t] - target[n, t]||_2``; both (N, L, D)."""
    if pred.shape != target.shape:
        raise ValueError(f"mapper output {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    # the clamp keeps the gradient finite where a token is matched exactly (d sqrt(x)/dx at 0)
    return (pred.float() - target.float()).pow(2).sum(-1).clamp_min(1e-12).sqrt().mean()
