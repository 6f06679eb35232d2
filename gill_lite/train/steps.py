"""From a batch of (caption, image features, generator targets) to GILL's losses.

Sequences (gill_spec.md):
- captioning: ``[prefix(image)] BOS caption``; labels on the caption tokens only (not on BOS, whose prediction
  from the visual tokens would teach nothing). Pair concatenation: the first ``round(concat_fraction * N)``
  examples of each (shuffled) batch are joined two by two into one sequence
  ``[prefix(a)] BOS caption_a [prefix(b)] BOS caption_b`` with labels on both captions, so half of the examples
  are seen in pairs and every example still appears exactly once. This follows FROMAGe/GILL's caption
  concatenation, which the published code applies to the captioning loss only; we do the same.
- [IMG] prediction: ``BOS caption [IMG0..7]``; labels on the caption tokens and on [IMG0] only ([IMG1..7] are
  never predicted: they are appended once [IMG0] is produced). The same forward pass gives the 8 [IMG] states
  for the generation loss and the [IMG0] state for the retrieval loss.
"""
from __future__ import annotations

import torch

from ..losses import IGNORE, contrastive_loss, generation_loss, lm_loss

STAGE_LOSSES = {
    "captioning": ("caption",),
    "img_tokens": ("img",),
    "generation": ("gen",),
    "retrieval": ("ret",),
    "joint": ("caption", "img", "gen", "ret"),
}


def _pad(seqs: list[torch.Tensor], value) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value)


def caption_inputs(model, prefix: torch.Tensor, captions: list[str], concat_fraction: float = 0.0,
                   max_text_len: int = 32):
    """Inputs embeddings, attention mask and labels for the captioning loss (see module docstring)."""
    device = prefix.device
    n_pairs = int(round(concat_fraction * len(captions))) // 2
    groups = [(2 * i, 2 * i + 1) for i in range(n_pairs)] + [(i,) for i in range(2 * n_pairs, len(captions))]
    # one tokenizer call and one embedding lookup for the whole batch, then split per example
    texts = model.tokenize_batch(captions)
    ids = [torch.tensor([model.bos_id] + t[: max_text_len - 1]) for t in texts]
    flat = model.embed_tokens(torch.cat(ids).to(device)).to(prefix.dtype)
    token_embeds = flat.split([len(i) for i in ids])
    embeds, labels = [], []
    for group in groups:
        parts_e, parts_l = [], []
        for i in group:
            parts_e += [prefix[i], token_embeds[i]]
            parts_l += [torch.full((prefix.shape[1] + 1,), IGNORE), ids[i][1:]]
        embeds.append(torch.cat(parts_e))
        labels.append(torch.cat(parts_l).to(device))
    mask = _pad([torch.ones(len(l), dtype=torch.long, device=device) for l in labels], 0)
    return _pad(embeds, 0.0), mask, _pad(labels, IGNORE)


def img_inputs(model, captions: list[str], max_text_len: int = 32):
    """Token ids, attention mask, labels and [IMG] positions for ``BOS caption [IMG0..7]``."""
    n_img = len(model.img_ids)
    ids, labels, positions = [], [], []
    for text in model.tokenize_batch(captions):
        text = text[: max(max_text_len - 1 - n_img, 1)]
        seq = [model.bos_id, *text, *model.img_ids]
        lab = [IGNORE, *text, model.img_ids[0]] + [IGNORE] * (n_img - 1)
        ids.append(torch.tensor(seq))
        labels.append(torch.tensor(lab))
        positions.append(torch.arange(len(seq) - n_img, len(seq)))
    mask = _pad([torch.ones(len(s), dtype=torch.long) for s in ids], 0)
    return _pad(ids, model.pad_id), mask, _pad(labels, IGNORE), torch.stack(positions)


def img_forward(model, captions: list[str], max_text_len: int = 32, with_grad: bool = True):
    """The LM on ``BOS caption [IMG0..7]``: returns (logits, labels, [IMG] states (N, n_img, lm_dim))."""
    ids, mask, labels, positions = (t.to(model.device) for t in img_inputs(model, captions, max_text_len))
    with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
        hidden, logits, _ = model.lm_forward(model.embed_tokens(ids), attention_mask=mask)
        states = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    return logits, labels, states


def compute_losses(model, batch: dict, stage: str, train_cfg) -> dict[str, torch.Tensor]:
    """The losses of ``stage`` on ``batch`` (keys ``captions``, ``image_features`` (N, image_hidden),
    ``text_targets`` (N, max_length, text_width), optionally ``img_states`` (N, n_img, lm_hidden) cached by
    `gill_lite.train.caches.img_states`, used instead of the LM pass when the stage has no [IMG] loss).
    Returns a dict of scalar losses (summed by the caller)."""
    wanted = STAGE_LOSSES[stage]
    losses = {}
    captions = batch["captions"]
    if "caption" in wanted:
        prefix = model.prefix(batch["image_features"].to(model.device))
        embeds, mask, labels = caption_inputs(model, prefix, captions, train_cfg.concat_fraction,
                                              train_cfg.max_text_len)
        _, logits, _ = model.lm_forward(embeds, attention_mask=mask)
        losses["caption"] = lm_loss(logits, labels)
    if "img" not in wanted and "img_states" in batch:  # cached [IMG] states (train/caches.py: img_states)
        states = batch["img_states"].to(model.device)
    elif {"img", "gen", "ret"} & set(wanted):
        # The LM pass needs a graph only when the [IMG] rows learn (the LM itself is frozen).
        logits, labels, states = img_forward(model, captions, train_cfg.max_text_len,
                                             with_grad=model.img_tokens.rows.requires_grad)
    if {"img", "gen", "ret"} & set(wanted):
        if "img" in wanted:
            losses["img"] = lm_loss(logits, labels)
        if "gen" in wanted:
            pred = model.map_states(states)
            losses["gen"] = generation_loss(pred, batch["text_targets"].to(pred.device))
        if "ret" in wanted:
            text = model.retrieval.embed_text(states[:, 0].float())
            image = model.retrieval.embed_image(batch["image_features"].to(model.device).float())
            losses["ret"] = contrastive_loss(text, image, model.retrieval.scale())
    return losses
