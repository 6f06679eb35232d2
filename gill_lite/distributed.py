"""All-gather that keeps gradients, for the contrastive loss over the whole (multi-process) batch.

Every process gathers all processes' embeddings and computes the same full-batch loss; the backward pass sums
each slice's gradient over processes and hands every process its own slice. With gradients then averaged across
processes (DDP or `accelerate`'s reduce), this gives exactly the single-process gradient of the full-batch loss
(open_clip's ``gather_with_grad``). Works with gloo (CPU) and NCCL; a no-op without ``torch.distributed``.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        # Processes may hold different batch sizes (the last batch): gather sizes, pad, gather, unpad.
        n = torch.tensor([x.shape[0]], device=x.device)
        sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
        dist.all_gather(sizes, n)
        sizes = [int(s) for s in sizes]
        biggest = max(sizes)
        padded = torch.zeros((biggest, *x.shape[1:]), dtype=x.dtype, device=x.device)
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # every process's loss depends on our slice
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (N_i, ...) from every process along dim 0, in rank order, differentiably.

    Without an initialised process group (or with one process) returns ``x`` itself.
    """
    if not is_distributed():
        return x
    return _AllGather.apply(x)
