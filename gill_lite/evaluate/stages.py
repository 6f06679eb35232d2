"""The stage metrics of notebooks 01-04 and `bench/gill_stages.py`, measured on ShapeStories ground truth.

- `caption_accuracy`: attributes parsed back from generated captions of held-out images;
- `img_emission_share`: share of captions after which ``[IMG0]`` is the greedy next token;
- `generation_accuracy`: the attribute probe on images generated through the mapper, next to the generator
  given the true caption (the ceiling);
- `retrieval_recall`: text-to-image recall@k of the retrieval heads over an image pool;
- `img_state_probe`: linear probes of the attributes on the [IMG] states after corpus captions, ``[IMG0]`` (what
  the retrieval head reads) and the mean of the 8 (what the mapper can read).
"""
from __future__ import annotations

import re

import numpy as np
import torch

from ..world.attributes import ATTRIBUTES, COLOURS, KINDS, SIZES

# Longest phrases first so "top left" wins over "top" and "left".
_POSITION_PATTERNS = [
    ("top left", r"top left"), ("top right", r"top right"), ("bottom left", r"bottom left"),
    ("bottom right", r"bottom right"), ("top", r"\btop\b"), ("bottom", r"\bbottom\b"), ("left", r"\bleft\b"),
    ("right", r"\bright\b"), ("middle", r"\bmiddle\b"),
]


def parse_caption(text: str) -> dict[str, str | None]:
    """The first kind, colour, size and position words of a caption (None where absent), in the world's
    vocabulary: ``parse_caption("A small red circle at the top left.")["position"] == "top left"``."""
    text = text.lower()
    out = {}
    for attr, values in (("kind", KINDS), ("colour", COLOURS), ("size", SIZES)):
        hits = [(m.start(), v) for v in values for m in [re.search(rf"\b{v}\b", text)] if m]
        out[attr] = min(hits)[1] if hits else None
    hits = []
    for value, pattern in _POSITION_PATTERNS:
        m = re.search(pattern, text)
        if m and not any(m.start() >= s and m.end() <= e for s, e, _ in hits):
            hits.append((m.start(), m.end(), value))
    out["position"] = min(hits)[2] if hits else None
    return out


def _accuracy(predicted: list[dict], shapes) -> dict[str, float]:
    n = max(len(shapes), 1)
    acc = {a: sum(p[a] == getattr(s, a) for p, s in zip(predicted, shapes)) / n for a in ATTRIBUTES}
    acc["all"] = sum(all(p[a] == getattr(s, a) for a in ATTRIBUTES) for p, s in zip(predicted, shapes)) / n
    return acc


def caption_accuracy(model, examples, image_size: int = 32, batch_size: int = 64):
    """Generated captions of ``examples``' images and their attribute accuracy -> (accuracy dict, captions)."""
    from ..model.functional import caption_images

    captions = []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        captions += caption_images(model, [e.image(image_size) for e in chunk])
    return _accuracy([parse_caption(c) for c in captions], [e.shape for e in examples]), captions


def img_emission_share(model, captions) -> float:
    """Share of ``captions`` after which [IMG0] is the greedy next token."""
    from ..model.functional import img_emission

    flags = img_emission(model, list(captions))
    return sum(flags) / max(len(flags), 1)


def generation_accuracy(model, generator, examples, seed: int = 0, batch_size: int = 64) -> dict:
    """Probe accuracy of images generated from each caption's [IMG] states through the mapper, and of the
    generator given the caption itself (the ceiling). Returns ``{"gill": {...}, "ceiling": {...}, "images": ...}``."""
    from ..model.functional import generate_images, img_states_batch
    from ..world.probe import attribute_accuracy

    captions = [e.caption for e in examples]
    shapes = [e.shape for e in examples]
    gill, sd = [], []
    for i in range(0, len(examples), batch_size):
        states = img_states_batch(model, captions[i : i + batch_size])
        gill.append(generate_images(model, generator, states, seed=seed + i))
        sd.append(generator.generate_from_text(captions[i : i + batch_size], seed=seed + i))
    gill, sd = np.concatenate(gill), np.concatenate(sd)
    return {"gill": attribute_accuracy(gill, shapes), "ceiling": attribute_accuracy(sd, shapes),
            "gill_images": gill, "ceiling_images": sd}


def retrieval_recall(model, examples, ks=(1, 5, 10), image_size: int = 32, batch_size: int = 256) -> dict:
    """Text-to-image recall@k: each caption's [IMG0] embedding against the images of all ``examples``."""
    from ..model.functional import RetrievalIndex, img_states_batch, text_embeddings

    images = np.stack([e.image(image_size) for e in examples])
    index = RetrievalIndex.build(model, images, [e.id for e in examples], batch_size=batch_size)
    queries = torch.cat([text_embeddings(model, img_states_batch(model, [e.caption for e in examples[i : i + batch_size]]))
                         for i in range(0, len(examples), batch_size)])
    return diagonal_recall_at_k(queries @ index.embeddings.t(), ks)


def diagonal_recall_at_k(scores: torch.Tensor, ks=(1, 5, 10)) -> dict:
    """Recall@k of a (queries x pool) score matrix whose diagonal holds the true pairs.

    Exact ties (pixel-identical renders give identical scores) are broken uniformly at random, in expectation:
    with ``g`` images scored above the true one and ``t`` tied with it, P(rank < k) = clip((k - g) / (t + 1), 0, 1).
    """
    true = scores.diag()[:, None]
    greater = (scores > true).sum(1).float()
    ties = (scores == true).sum(1).float() - 1  # the true image itself is not a tie
    return {f"R@{k}": float(((k - greater) / (ties + 1)).clamp(0, 1).mean()) for k in ks}


@torch.no_grad()
def next_token_table(model, texts, k: int = 5) -> list[list[tuple[str, float]]]:
    """The ``k`` most likely next tokens (with probabilities) after each text, [IMG1..7] excluded."""
    from ..model.functional import padded_contexts

    model.eval()
    embeds, mask, lengths = padded_contexts(model, list(texts))
    _, logits, _ = model.lm_forward(embeds, attention_mask=mask)
    last = logits[torch.arange(len(lengths)), lengths - 1].float()
    last[:, list(model.img_ids[1:])] = float("-inf")
    top = last.softmax(-1).topk(k, dim=-1)
    tok = model.tokenizer
    return [[(tok.convert_ids_to_tokens(int(i)), round(float(p), 3)) for p, i in zip(ps, ids)]
            for ps, ids in zip(top.values, top.indices)]


def retrieval_ceiling(examples, ks=(1, 5, 10)) -> dict:
    """Expected recall@k of an oracle that knows each query's attributes but not the pixel jitter: the true image
    ties with the ``m`` pool images of the same attributes, so R@k = mean(min(1, k / m)). Captions only name
    attributes, so this bounds any text-to-image retriever on ShapeStories pools."""
    from collections import Counter

    counts = Counter(e.shape for e in examples)
    n = max(len(examples), 1)
    return {f"R@{k}": sum(min(1.0, k / counts[e.shape]) for e in examples) / n for k in ks}


def linear_probe_predictions(train_features, train_shapes, eval_features, steps: int = 300,
                             seed: int = 0) -> dict[str, torch.Tensor]:
    """Per attribute, a linear classifier on frozen features (standardised; Adam, full batch) fitted to the
    train rows' shapes: the predicted value index (into ``VALUES[attribute]``) of every eval row."""
    from ..world.attributes import VALUES

    torch.manual_seed(seed)
    x, z = torch.as_tensor(train_features).float(), torch.as_tensor(eval_features).float()
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x, z = (x - mu) / sd, (z - mu) / sd
    out = {}
    for attr in ATTRIBUTES:
        values = VALUES[attr]
        y = torch.tensor([values.index(getattr(s, attr)) for s in train_shapes])
        probe = torch.nn.Linear(x.shape[1], len(values))
        opt = torch.optim.Adam(probe.parameters(), lr=1e-2)
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(probe(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            out[attr] = probe(z).argmax(1)
    return out


def linear_probe_accuracy(train_features, train_shapes, eval_features, eval_shapes, steps: int = 300,
                          seed: int = 0) -> dict[str, float]:
    """Per-attribute accuracy of `linear_probe_predictions` on the eval rows (and all four right together).

    The visual prefix is linear too, so on image features this is roughly what captioning can reach."""
    from ..world.attributes import VALUES

    predicted = linear_probe_predictions(train_features, train_shapes, eval_features, steps, seed)
    out, correct = {}, torch.ones(len(eval_shapes), dtype=torch.bool)
    for attr in ATTRIBUTES:
        hit = predicted[attr] == torch.tensor([VALUES[attr].index(getattr(s, attr)) for s in eval_shapes])
        out[attr] = float(hit.float().mean())
        correct &= hit
    out["all"] = float(correct.float().mean())
    return out


def img_state_probe(model, fit_examples, eval_examples, steps: int = 300) -> dict:
    """Per attribute, a linear probe (`linear_probe_accuracy`) fitted on the [IMG] states after ``fit_examples``'
    captions and scored after ``eval_examples``': ``{"img0": {...}, "mean": {...}}``, on the ``[IMG0]`` state (all
    the retrieval head reads, as published) and on the mean of the 8 (the mapper reads them all). An attribute the
    ``img0`` probe misses is one the retrieval head cannot rank by."""
    from ..model.functional import img_states_batch

    @torch.no_grad()
    def states(examples):  # img_states_batch batches the LM passes itself
        return img_states_batch(model, [e.caption for e in examples]).states

    fit, ev = states(fit_examples), states(eval_examples)
    fit_shapes, eval_shapes = [e.shape for e in fit_examples], [e.shape for e in eval_examples]
    return {name: linear_probe_accuracy(pick(fit), fit_shapes, pick(ev), eval_shapes, steps)
            for name, pick in (("img0", lambda s: s[:, 0]), ("mean", lambda s: s.mean(1)))}


def image_encoder_probe(profile, image_encoder, examples, steps: int = 300) -> dict[str, float]:
    """`linear_probe_accuracy` of ``image_encoder``'s pooled vectors: trained on the profile's training set
    (its cached features), tested on ``examples`` (world `Example`s, rendered here). The visual prefix is one
    linear layer, so this is roughly the ceiling of captioning on those images."""
    from ..world.corpus import make_split, render_images
    from ..train.caches import image_features
    from ..train.data import training_set

    w = profile.world
    feats = image_features(training_set(profile), image_encoder, profile.run_dir / "cache")
    train_shapes = [e.shape for e in make_split("train", w.n_train, w.seed, w.heldout_fraction, w.image_size)]
    return linear_probe_accuracy(feats[list(range(len(feats)))], train_shapes,
                                 image_encoder.encode(render_images(examples, w.image_size)),
                                 [e.shape for e in examples], steps=steps)
