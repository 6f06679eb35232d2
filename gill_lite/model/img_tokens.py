"""The ``[IMG0]..[IMG7]`` tokens: new vocabulary rows that are the only part of the LM that learns.

GILL adds 8 tokens to the tokenizer and trains only their rows of the (tied) input/output embedding matrix by
zeroing every other row's gradient; after each step the 8 rows are rescaled to the mean norm of the frozen rows.

Here the mask is structural instead of a gradient hook: the LM's whole embedding matrix stays frozen
(``requires_grad=False``) and the 8 rows live in a small separate ``Parameter`` (`ImgTokens.rows`) that is
substituted into the embedding lookup and into the matching logit columns. It learns exactly what the masked rows
would learn, and it fixes two quirks of the published code: AdamW's decoupled weight decay can no longer shrink
the frozen rows (they are not in the optimizer at all), and the optimizer holds 8 rows of state instead of a
whole 50k-row matrix. An untied output head (e.g. Llama) gets its own trainable rows (`ImgTokens.head_rows`);
a tied one (OPT) reuses ``rows`` for the output side, as the published tied matrix does.
"""
from __future__ import annotations

import torch
from torch import nn

IMAGE_MARKER = "<|image|>"


def img_token_names(n: int = 8) -> list[str]:
    return [f"[IMG{i}]" for i in range(n)]


def _tied(lm) -> bool:
    out = lm.get_output_embeddings()
    return out is not None and out.weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()


def add_img_tokens(lm, tokenizer, n: int = 8, seed: int = 0) -> list[int]:
    """Add ``[IMG0..n-1]`` and ``<|image|>`` to ``tokenizer`` and make room in ``lm``'s embedding matrix.

    Idempotent (a second call on the same LM finds the tokens and changes nothing). Rows created for the new
    tokens start at the mean of the existing rows (a neutral point; the trainable copies are initialised by
    `ImgTokens`). Returns the ids of ``[IMG0..n-1]`` in order.
    """
    names = img_token_names(n)
    missing = [t for t in [IMAGE_MARKER, *names] if t not in tokenizer.get_vocab()]
    if missing:
        # special: never split, and skipped by ``decode(..., skip_special_tokens=True)``
        tokenizer.add_tokens(missing, special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(names)
    new_ids = tokenizer.convert_tokens_to_ids(missing) if missing else []
    emb = lm.get_input_embeddings()
    old_rows = emb.weight.shape[0]
    if len(tokenizer) > old_rows:
        # mean_resizing=False: we set the new rows ourselves just below (mean of the old rows).
        lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        weight = lm.get_input_embeddings().weight
        known = [i for i in range(min(old_rows, weight.shape[0])) if i not in set(new_ids)]
        mean = weight[known].float().mean(0).to(weight.dtype)
        for i in new_ids:
            weight[i] = mean
        head = lm.get_output_embeddings()
        if head is not None and not _tied(lm):
            head_mean = head.weight[known].float().mean(0).to(head.weight.dtype)
            for i in new_ids:
                head.weight[i] = head_mean
    return list(ids)


class ImgTokens(nn.Module):
    """The trainable rows of the ``[IMG]`` tokens, substituted into a frozen LM's embeddings and logits."""

    def __init__(self, lm, ids: list[int], seed: int = 0):
        super().__init__()
        weight = lm.get_input_embeddings().weight
        self.tied = _tied(lm)
        self.register_buffer("ids", torch.tensor(ids, dtype=torch.long), persistent=False)
        index = torch.full((weight.shape[0],), -1, dtype=torch.long)
        index[self.ids] = torch.arange(len(ids))
        self.register_buffer("index", index, persistent=False)  # vocab id -> row of `rows`, or -1
        gen = torch.Generator().manual_seed(seed)
        self.rows, norm = self._init_rows(weight, gen)
        self.register_buffer("frozen_norm", norm, persistent=False)
        self.head_rows = None
        if not self.tied:
            self.head_rows, head_norm = self._init_rows(lm.get_output_embeddings().weight, gen)
            self.register_buffer("head_frozen_norm", head_norm, persistent=False)
        self.rescale_()

    def _init_rows(self, weight: torch.Tensor, gen: torch.Generator):
        """Rows drawn around the mean of the frozen rows with their spread; the target norm of the rescaling."""
        keep = torch.ones(weight.shape[0], dtype=torch.bool)
        keep[self.ids] = False
        frozen = weight.detach()[keep].float()
        noise = torch.randn(len(self.ids), weight.shape[1], generator=gen) * frozen.std(0)
        return nn.Parameter(frozen.mean(0) + noise), frozen.norm(dim=1).mean()

    def embed(self, input_ids: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Replace the (frozen, stale) embeddings of [IMG] tokens in ``base`` by the trainable rows."""
        row = self.index[input_ids]
        is_img = (row >= 0).unsqueeze(-1)
        return torch.where(is_img, self.rows[row.clamp(min=0)].to(base.dtype), base)

    def logits(self, hidden: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Replace the [IMG] columns of ``base`` logits by ``hidden @ rows.T`` (tied) or ``@ head_rows.T``."""
        rows = self.rows if self.tied else self.head_rows
        img = hidden @ rows.to(hidden.dtype).t()
        return base.index_copy(-1, self.ids, img.to(base.dtype))

    @torch.no_grad()
    def rescale_(self) -> None:
        """Rescale every [IMG] row to the mean norm of the frozen rows (after each optimiser step)."""
        self.rows.mul_(self.frozen_norm / self.rows.norm(dim=1, keepdim=True).clamp(min=1e-8))
        if self.head_rows is not None:
            self.head_rows.mul_(self.head_frozen_norm / self.head_rows.norm(dim=1, keepdim=True).clamp(min=1e-8))
