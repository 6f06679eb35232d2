"""From a batch of (caption, image features, generator targets) to GILL's losses.

Sequences (gill_spec.md), for one example or a concatenated pair (published ``main.py`` and
``gill/models.py: forward``, which concatenate in all three modes):
- captioning: ``[prefix(a)] BOS caption_a``, or for a pair ``[prefix(a)] BOS caption_a [prefix(b)] caption_b``
  (the second BOS removed); labels on the caption tokens only (not on BOS, whose prediction from the visual
  tokens would teach nothing). With ``train_cfg.bos_before_images`` (tiny, ci: a deviation, see the README) the
  first example reads ``BOS [prefix(a)] caption_a``.
- [IMG] prediction, generation and retrieval: ``BOS caption_a [IMG0..7]``, or for a pair ``BOS caption_a
  [IMG0..7] caption_b [IMG0..7]`` (second BOS removed); labels on the caption tokens and on each [IMG0]
  ([IMG1..7] are never predicted: they are appended once [IMG0] is produced). The same forward pass gives the
  8 [IMG] states of *both* blocks, each used with its own example's target (generation) and image (retrieval):
  the pair is where GILL learns that [IMG] states after earlier context describe the latest caption.
  ``train_cfg.caption_pairs`` False (tiny, ci: a deviation, see the README): the captioning loss reads every
  example alone, the other losses still join the batch's pairs.
  Where the batch carries ``img_texts`` (`gill_lite.train.data.CaptionSet.img_texts`: at tiny, captions
  restyled into several sentences), these sequences read them in place of the captions; captioning and the
  generation targets always read the captions.

Which examples are joined is the batch's ``groups`` (tuples of positions in the batch: ``(a, b)`` a pair,
``(a,)`` alone), chosen by the training loop (`gill_lite.train.pairs`); without it, the first
``round(concat_fraction * N)`` examples are joined two by two. Every example appears in exactly one group.
The published code tosses one coin per batch and mode (all examples paired, or none); joining a fixed share of
every batch sees the same share of pairs with less variance between steps.
"""
from __future__ import annotations

import torch

from ..losses import IGNORE, contrastive_loss, generation_loss, lm_loss

# The staged chain (notebooks 01-04). Stage 02 trains the [IMG] rows on the three losses the paper trains them on:
# [IMG] prediction, and generation and retrieval, which read the [IMG] states. The prediction loss alone never asks
# the states to carry the caption (with the LM stand-in of stories of 2-8 frames, a linear probe read colour from
# the [IMG0] state at 0.87 and test-pool R@1 fell to 0.12 of a 0.18 ceiling; README, "This build").
STAGE_LOSSES = {
    "captioning": ("caption",),
    "img_tokens": ("img", "gen", "ret"),
    "generation": ("gen",),
    "retrieval": ("ret",),
    "joint": ("caption", "img", "gen", "ret"),
}


def _pad(seqs: list[torch.Tensor], value) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value)


def default_groups(n: int, concat_fraction: float) -> list[tuple[int, ...]]:
    """The first ``round(concat_fraction * n)`` examples joined two by two, the rest alone."""
    n_pairs = int(round(concat_fraction * n)) // 2
    return [(2 * i, 2 * i + 1) for i in range(n_pairs)] + [(i,) for i in range(2 * n_pairs, n)]


def _check_groups(groups, n: int) -> list[tuple[int, ...]]:
    groups = [tuple(int(i) for i in g) for g in groups]
    flat = sorted(i for g in groups for i in g)
    if flat != list(range(n)) or any(len(g) not in (1, 2) for g in groups):
        raise ValueError(f"groups must hold each of the {n} examples once, alone or in pairs: {groups}")
    return groups


def caption_inputs(model, prefix: torch.Tensor, captions: list[str], concat_fraction: float = 0.0,
                   max_text_len: int = 32, groups=None, bos_first: bool = False):
    """Inputs embeddings, attention mask and labels for the captioning loss (see module docstring); ``bos_first``:
    a group's first example reads ``BOS [prefix] caption`` (`TrainConfig.bos_before_images`)."""
    device = prefix.device
    groups = _check_groups(default_groups(len(captions), concat_fraction) if groups is None else groups, len(captions))
    # one tokenizer call and one embedding lookup for the whole batch, then split per example
    texts = [t[: max_text_len - 1] for t in model.tokenize_batch(captions)]
    ids = [torch.tensor([model.bos_id] + t, dtype=torch.long) for t in texts]
    flat = model.embed_tokens(torch.cat(ids).to(device)).to(prefix.dtype)
    token_embeds = flat.split([len(i) for i in ids])
    embeds, labels = [], []
    for group in groups:
        parts_e, parts_l = [], []
        for k, i in enumerate(group):
            skip = 0 if k == 0 else 1  # the second caption of a pair loses its BOS
            if skip == 0 and bos_first:
                parts_e += [token_embeds[i][:1], prefix[i], token_embeds[i][1:]]
            else:
                parts_e += [prefix[i], token_embeds[i][skip:]]
            parts_l += [torch.full((prefix.shape[1] + 1 - skip,), IGNORE, dtype=torch.long), ids[i][1:]]
        embeds.append(torch.cat(parts_e))
        labels.append(torch.cat(parts_l).to(device))
    mask = _pad([torch.ones(len(l), dtype=torch.long, device=device) for l in labels], 0)
    return _pad(embeds, 0.0), mask, _pad(labels, IGNORE)


def img_inputs(model, captions: list[str], max_text_len: int = 32, groups=None):
    """Token ids, attention mask, labels and where each example's [IMG] block sits, for ``BOS caption
    [IMG0..7]`` (or a pair, ``BOS caption_a [IMG0..7] caption_b [IMG0..7]``; see module docstring).

    Returns ``(ids (R, T), mask (R, T), labels (R, T), rows (N,), positions (N, n_img))``: example ``i``'s
    [IMG] states are ``hidden[rows[i], positions[i]]``. Without ``groups`` every example is alone (R = N)."""
    n_img = len(model.img_ids)
    groups = _check_groups([(i,) for i in range(len(captions))] if groups is None else groups, len(captions))
    texts = [t[: max(max_text_len - 1 - n_img, 1)] for t in model.tokenize_batch(captions)]
    ids, labels = [], []
    rows = torch.zeros(len(captions), dtype=torch.long)
    positions = torch.zeros(len(captions), n_img, dtype=torch.long)
    for r, group in enumerate(groups):
        seq, lab = [model.bos_id], [IGNORE]
        for i in group:
            seq += [*texts[i], *model.img_ids]
            lab += [*texts[i], model.img_ids[0]] + [IGNORE] * (n_img - 1)
            rows[i], positions[i] = r, torch.arange(len(seq) - n_img, len(seq))
        ids.append(torch.tensor(seq, dtype=torch.long))
        labels.append(torch.tensor(lab, dtype=torch.long))
    mask = _pad([torch.ones(len(s), dtype=torch.long) for s in ids], 0)
    return _pad(ids, model.pad_id), mask, _pad(labels, IGNORE), rows, positions


def img_forward(model, captions: list[str], max_text_len: int = 32, with_grad: bool = True, groups=None):
    """The LM on the [IMG] sequences: returns (logits, labels, [IMG] states (N, n_img, lm_dim) in example order)."""
    ids, mask, labels, rows, positions = (t.to(model.device) for t in img_inputs(model, captions, max_text_len, groups))
    with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
        hidden, logits, _ = model.lm_forward(model.embed_tokens(ids), attention_mask=mask)
        states = hidden[rows[:, None], positions]
    return logits, labels, states


def compute_losses(model, batch: dict, stage: str, train_cfg) -> dict[str, torch.Tensor]:
    """The losses of ``stage`` on ``batch`` (keys ``captions``, optionally ``img_texts`` (what the [IMG] losses
    read instead of the captions, `gill_lite.train.data.CaptionSet.img_texts`), ``image_features`` (N, image_hidden),
    ``text_targets`` (N, max_length, text_width), optionally ``groups`` (which examples are joined in pairs,
    see module docstring) and ``img_states`` (N, n_img, lm_hidden): each example's [IMG] states in its group,
    cached by `gill_lite.train.caches.img_states`, used instead of the LM pass when the stage has no [IMG] loss).
    Returns a dict of scalar losses (summed by the caller)."""
    wanted = STAGE_LOSSES[stage]
    losses = {}
    captions = batch["captions"]
    groups = batch.get("groups") or default_groups(len(captions), train_cfg.concat_fraction)
    if "caption" in wanted:
        prefix = model.prefix(batch["image_features"].to(model.device))
        caption_groups = groups if train_cfg.caption_pairs else [(i,) for i in range(len(captions))]
        embeds, mask, labels = caption_inputs(model, prefix, captions, max_text_len=train_cfg.max_text_len,
                                              groups=caption_groups, bos_first=train_cfg.bos_before_images)
        _, logits, _ = model.lm_forward(embeds, attention_mask=mask)
        losses["caption"] = lm_loss(logits, labels)
    if "img" not in wanted and "img_states" in batch:  # cached [IMG] states (train/caches.py: img_states)
        states = batch["img_states"].to(model.device)
    elif {"img", "gen", "ret"} & set(wanted):
        # The LM pass needs a graph only when the [IMG] rows learn (the LM itself is frozen).
        logits, labels, states = img_forward(model, batch.get("img_texts", captions), train_cfg.max_text_len,
                                             with_grad=model.img_tokens.rows.requires_grad, groups=groups)
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
