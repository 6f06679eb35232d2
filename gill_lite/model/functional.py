"""What a GillModel computes at inference, as plain functions of the model (as ``torch.nn.functional`` is to
``torch.nn``): interleaved images and text in; text, [IMG] states, prompt embeddings, retrieval scores out.

The stage metrics (`gill_lite.evaluate.stages`) call them directly; everything else holds a
`gill_lite.inference.GillPipeline`, which owns the frozen generator and the retrieval index and calls these.

Inputs are "contexts": a ``str``, an image (uint8 ``(H, W, 3)`` array), or a list mixing both. Each image
becomes its visual-prefix tokens; the first text segment becomes ``BOS text`` and every later one just ``text``:
BOS is added once per context, as the published ``generate_for_images_and_texts(..., always_add_bos=False)``
does, and as the training sequences (``[prefix] BOS caption [prefix] caption``, ``BOS caption [IMG0..7] caption
[IMG0..7]``) are built. A BOS before every segment would open a new document for the LM at every caption.
With ``train_cfg.bos_before_images`` (tiny, ci) the BOS opens the context even where an image comes first, as
captioning then trained (``BOS [prefix] caption``); a context that starts with text is the same either way.

Decoding is greedy with a KV cache. ``[IMG1..7]`` can never be sampled; once ``[IMG0]`` is produced, the other
seven are appended (fed one by one through the cache, which computes exactly what appending them at once does).
The building blocks the decision, evaluation and dialogue code use:

- `caption_image`, `generate_text` (greedy decoding, `DecodeResult`);
- `emits_img` / `img_emission` (is [IMG0] the greedy next token after a text);
- `img_states` / `img_states_batch` (the 8 [IMG] hidden states after a context, [IMG0..7] forced at the end);
- `generate_images` (states -> mapper -> generator), `RetrievalIndex` + `retrieve`, `decision_inputs` + `decide`.

Images are encoded with the model's own frozen image encoder (``model.image_encoder``, given to `GillModel`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .decision import CLASSES


class ImgStates(NamedTuple):
    """The LM's last-layer hidden states at ``[IMG0..7]`` ``(N, 8, lm_dim)`` and those tokens' input embeddings
    ``(8, lm_dim)`` (the mapper's two inputs)."""

    states: torch.Tensor
    embeds: torch.Tensor


@dataclass
class DecodeResult:
    """One greedy continuation: token ids, text (special tokens dropped) and the [IMG] states it produced
    (one ``(8, lm_dim)`` tensor per completed ``[IMG0..7]`` run)."""

    ids: list[int]
    text: str
    img_states: list[torch.Tensor] = field(default_factory=list)


def is_image(x) -> bool:
    """Whether a context item is an image (a numpy array or a PIL image) rather than text."""
    return isinstance(x, np.ndarray) or (hasattr(x, "size") and hasattr(x, "mode"))  # numpy or PIL


def encode_images(model, images) -> torch.Tensor:
    """Pooled image-encoder vectors ``(N, image_hidden)`` of uint8 images, with the model's frozen encoder."""
    if getattr(model, "image_encoder", None) is None:
        raise ValueError("this GillModel has no image encoder (build it with GillModel.build(frozen_parts, ...))")
    images = np.stack([np.asarray(im, dtype=np.uint8) for im in images])
    with torch.no_grad():
        return model.image_encoder.encode(images).float().to(model.device)


def context_embeds(model, context) -> torch.Tensor:
    """Input embeddings ``(T, lm_dim)`` of a context (str, image, or a list of both; see module docstring)."""
    items = [context] if isinstance(context, str) or is_image(context) else list(context)
    if not items:
        raise ValueError("empty context")
    images = [x for x in items if is_image(x)]
    feats = iter(model.prefix(encode_images(model, images))) if images else iter(())
    parts, bos = [], [model.bos_id]
    if model.train_cfg.bos_before_images:  # BOS opens the context, before an image too
        parts.append(model.embed_tokens(torch.tensor(bos, device=model.device, dtype=torch.long)))
        bos = []
    for x in items:
        if is_image(x):
            parts.append(next(feats))
        elif isinstance(x, str):
            ids = torch.tensor(bos + model.tokenize(x), device=model.device, dtype=torch.long)
            bos = []  # once per context
            parts.append(model.embed_tokens(ids))
        else:
            raise TypeError(f"a context holds str or uint8 images, not {type(x).__name__}")
    dtype = model.lm.get_input_embeddings().weight.dtype
    return torch.cat([p.to(dtype) for p in parts])


@torch.no_grad()
def greedy_decode(model, prompt_embeds: torch.Tensor, max_new_tokens: int = 32, stop_ids=(),
                  stop_at_img: bool = False, use_cache: bool = True) -> list[DecodeResult]:
    """Greedy continuations of a batch of equal-length prompts ``(B, T, lm_dim)``.

    A row stops at a token in ``stop_ids`` (kept in ``ids``), or after its ``[IMG7]`` with ``stop_at_img``, or
    after ``max_new_tokens``. ``use_cache=False`` recomputes the whole sequence at every step (for testing).
    """
    model.eval()
    img0, rest = model.img_ids[0], list(model.img_ids[1:])
    banned = torch.tensor(rest, device=model.device)
    n = prompt_embeds.shape[0]
    ids = [[] for _ in range(n)]
    states = [[] for _ in range(n)]
    current = [[] for _ in range(n)]
    forced = [[] for _ in range(n)]
    done = [False] * n
    embeds = prompt_embeds
    _, logits, cache = model.lm_forward(embeds, use_cache=use_cache)
    stop_ids = set(int(s) for s in stop_ids)
    for _ in range(max_new_tokens):
        scores = logits[:, -1].float()
        scores[:, banned] = float("-inf")  # [IMG1..7] are never sampled
        choice = scores.argmax(-1).tolist()
        step = []
        for b in range(n):
            tok = forced[b].pop(0) if forced[b] else choice[b]
            if tok == img0 and not done[b]:
                forced[b] = list(rest)
            step.append(tok if not done[b] else model.pad_id)
        new = model.embed_tokens(torch.tensor(step, device=model.device)[:, None])
        if use_cache:
            hidden, logits, cache = model.lm_forward(new, cache=cache, use_cache=True)
        else:
            embeds = torch.cat([embeds, new.to(embeds.dtype)], 1)
            hidden, logits, _ = model.lm_forward(embeds)
            hidden, logits = hidden[:, -1:], logits[:, -1:]
        for b, tok in enumerate(step):
            if done[b]:
                continue
            ids[b].append(tok)
            if tok in model.img_ids:
                current[b].append(hidden[b, -1])
                if len(current[b]) == len(model.img_ids):
                    states[b].append(torch.stack(current[b]))
                    current[b] = []
                    done[b] = stop_at_img
            if tok in stop_ids and not forced[b]:
                done[b] = True
        if all(done):
            break
    tok = model.tokenizer
    return [DecodeResult(i, tok.decode(i, skip_special_tokens=True).strip(), s) for i, s in zip(ids, states)]


def generate_text(model, context, max_new_tokens: int = 32, stop_ids=None, stop_at_img: bool = False) -> DecodeResult:
    """Greedy continuation of an interleaved context (stops at EOS by default)."""
    stop = [model.tokenizer.eos_token_id] if stop_ids is None else stop_ids
    embeds = context_embeds(model, context).unsqueeze(0)
    return greedy_decode(model, embeds, max_new_tokens, [s for s in stop if s is not None], stop_at_img)[0]


def _first_sentence(text: str) -> str:
    cut = text.find(".")
    return text[: cut + 1] if cut >= 0 else text


@torch.no_grad()
def caption_images(model, images, max_new_tokens: int = 24) -> list[str]:
    """Greedy captions ``[prefix(image)] BOS ...`` (``BOS [prefix(image)] ...`` with
    ``bos_before_images``, as captioning trained) of a batch of uint8 images; the first sentence of each."""
    prefix = model.prefix(encode_images(model, images))
    bos = model.embed_tokens(torch.full((len(prefix), 1), model.bos_id, device=model.device))
    pieces = [bos, prefix.to(bos.dtype)] if model.train_cfg.bos_before_images else [prefix.to(bos.dtype), bos]
    embeds = torch.cat(pieces, 1)
    stop = [t for t in (model.tokenizer.eos_token_id, *model.tokenize(".")) if t is not None][:2]
    results = greedy_decode(model, embeds, max_new_tokens, stop_ids=stop)
    return [_first_sentence(r.text) for r in results]


def caption_image(model, image, max_new_tokens: int = 24) -> str:
    """The greedy caption of one uint8 image."""
    return caption_images(model, [image], max_new_tokens)[0]


def padded_contexts(model, contexts, suffix_ids=()):
    """Right-padded embeddings of several contexts (+ optional suffix tokens), mask, and last positions."""
    rows = []
    for c in contexts:
        e = context_embeds(model, c)
        if suffix_ids:
            e = torch.cat([e, model.embed_tokens(torch.tensor(list(suffix_ids), device=model.device)).to(e.dtype)])
        rows.append(e)
    lengths = torch.tensor([len(r) for r in rows], device=model.device)
    embeds = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
    mask = (torch.arange(embeds.shape[1], device=model.device)[None] < lengths[:, None]).long()
    return embeds, mask, lengths


@torch.no_grad()
def img_emission(model, texts, batch_size: int = 64) -> list[bool]:
    """For each context, whether ``[IMG0]`` is the greedy next token after it ([IMG1..7] excluded)."""
    model.eval()
    out = []
    banned = list(model.img_ids[1:])
    for i in range(0, len(texts), batch_size):
        embeds, mask, lengths = padded_contexts(model, texts[i : i + batch_size])
        _, logits, _ = model.lm_forward(embeds, attention_mask=mask)
        last = logits[torch.arange(len(lengths)), lengths - 1].float()
        last[:, banned] = float("-inf")
        out += (last.argmax(-1) == model.img_ids[0]).tolist()
    return out


def emits_img(model, text) -> bool:
    """Whether ``[IMG0]`` is the greedy next token after ``text`` (a str or an interleaved context)."""
    return img_emission(model, [text])[0]


@torch.no_grad()
def last_states(model, contexts, batch_size: int = 64) -> torch.Tensor:
    """The LM's last-layer hidden state at each context's last token ``(N, lm_dim)`` (no [IMG] appended)."""
    model.eval()
    out = []
    for i in range(0, len(contexts), batch_size):
        embeds, mask, lengths = padded_contexts(model, contexts[i : i + batch_size])
        hidden, _, _ = model.lm_forward(embeds, attention_mask=mask)
        out.append(hidden[torch.arange(len(lengths)), lengths - 1].float().cpu())
    return torch.cat(out)


@torch.no_grad()
def img_states_batch(model, contexts, batch_size: int = 64) -> ImgStates:
    """The 8 [IMG] states after each context with ``[IMG0..7]`` appended: ``ImgStates((N, 8, d), (8, d))``."""
    model.eval()
    n_img = len(model.img_ids)
    out = []
    for i in range(0, len(contexts), batch_size):
        embeds, mask, lengths = padded_contexts(model, contexts[i : i + batch_size], model.img_ids)
        hidden, _, _ = model.lm_forward(embeds, attention_mask=mask)
        pos = lengths[:, None] - n_img + torch.arange(n_img, device=model.device)[None]
        out.append(hidden.gather(1, pos.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])).float())
    return ImgStates(torch.cat(out), model.img_embeds().detach().float())


def context_length(model, context) -> int:
    """How many LM positions a context takes, as `context_embeds` builds it, without running the encoder: one
    BOS before the first text, each text's tokens, and the visual prefix's tokens per image."""
    items = [context] if isinstance(context, str) or is_image(context) else list(context)
    texts = [x for x in items if isinstance(x, str)]
    return bool(texts) + sum(len(model.tokenize(x)) for x in texts) + model.train_cfg.n_visual_tokens * (len(items) - len(texts))


def img_states(model, context) -> ImgStates:
    """The 8 [IMG] states after one context (str, image, or a list of both): ``ImgStates((1, 8, d), (8, d))``."""
    return img_states_batch(model, [context])


def _states(states) -> torch.Tensor:
    s = states.states if isinstance(states, ImgStates) else states
    return s.unsqueeze(0) if s.dim() == 2 else s


@torch.no_grad()
def prompt_embeds(model, states) -> torch.Tensor:
    """The mapper's output for [IMG] states: the generator's ``prompt_embeds`` ``(N, max_length, text_width)``."""
    model.eval()
    return model.map_states(_states(states).to(model.device))


def generate_images(model, generator, states, seed: int = 0, **kwargs) -> np.ndarray:
    """Images from [IMG] states through the mapper and ``generator.generate(prompt_embeds, seed)``: uint8 NHWC."""
    return generator.generate(prompt_embeds(model, states), seed=seed, **kwargs)


@dataclass
class RetrievalIndex:
    """Retrieval-head embeddings ``(N, retrieval_dim)`` of a set of images, with their ids, and optionally the
    images themselves (what a retrieval shows).

    ``images``: uint8 ``(N, H, W, 3)`` in index order, or a function of index positions returning such an array
    (a dataset that reads its files on demand), or None (ids only: `images_of` refuses).
    """

    ids: list[str]
    embeddings: torch.Tensor
    images: object = field(default=None, repr=False)
    _positions: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if len(self.ids) != len(self.embeddings):
            raise ValueError(f"{len(self.ids)} ids for {len(self.embeddings)} embeddings")
        if self.images is not None and not callable(self.images) and len(self.images) != len(self.ids):
            raise ValueError(f"{len(self.images)} images for {len(self.ids)} ids")

    @property
    def has_images(self) -> bool:
        """Whether `images_of` can show what a retrieval found."""
        return self.images is not None

    def position(self, item_id: str) -> int:
        """Where ``item_id`` sits in the index (a clear KeyError for an id it does not hold)."""
        if self._positions is None:
            self._positions = {i: n for n, i in enumerate(self.ids)}
        try:
            return self._positions[item_id]
        except KeyError:
            raise KeyError(f"{item_id!r} is not in this retrieval index ({len(self)} ids)") from None

    def images_of(self, ids) -> np.ndarray:
        """The uint8 images ``(len(ids), H, W, 3)`` behind ``ids``."""
        if self.images is None:
            raise ValueError("this retrieval index holds ids only, no images: build it from images, or give it "
                             "images= (an array in index order, or a function of index positions)")
        rows = [self.position(i) for i in ids]
        if callable(self.images):
            return np.asarray(self.images(rows), dtype=np.uint8)
        return np.stack([np.asarray(self.images[r], dtype=np.uint8) for r in rows])

    @classmethod
    @torch.no_grad()
    def from_features(cls, model, pooled: torch.Tensor, ids, images=None) -> "RetrievalIndex":
        """From pooled image-encoder vectors ``(N, image_hidden)`` (``images``: see the class)."""
        model.eval()
        emb = model.retrieval.embed_image(torch.as_tensor(pooled).float().to(model.device)).cpu()
        if len(ids) != len(emb):
            raise ValueError(f"{len(ids)} ids for {len(emb)} images")
        return cls(list(ids), emb, images)

    @classmethod
    def build(cls, model, images, ids, batch_size: int = 256) -> "RetrievalIndex":
        """From uint8 images ``(N, H, W, 3)``, encoded with the model's frozen image encoder; the index keeps
        the images, so a retrieval can show them."""
        feats = torch.cat([encode_images(model, images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
        index = cls.from_features(model, feats, ids)
        index.images = images
        return index

    MAX_METADATA_IDS = 8 << 20  # safetensors headers are capped (100 MB): larger id lists go to a sidecar JSON

    def save(self, path) -> Path:
        """One safetensors file (``embeddings``; ids in its metadata, or in ``<path>.ids.json`` when huge)."""
        from ..io import atomic_save_file, atomic_write_json

        path = Path(path)
        ids = json.dumps(self.ids)
        if len(ids) <= self.MAX_METADATA_IDS:
            atomic_save_file({"embeddings": self.embeddings.float()}, path, metadata={"ids": ids})
        else:
            atomic_write_json(path.with_name(path.name + ".ids.json"), self.ids, indent=None)
            atomic_save_file({"embeddings": self.embeddings.float()}, path, metadata={"ids_file": path.name + ".ids.json"})
        return path

    @classmethod
    def load(cls, path) -> "RetrievalIndex":
        """Read a `save` file back (ids and embeddings; the images are not in it)."""
        from safetensors import safe_open

        path = Path(path)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            ids = json.loads(meta["ids"]) if "ids" in meta else json.loads((path.parent / meta["ids_file"]).read_text())
            return cls(ids, f.get_tensor("embeddings"))

    def __len__(self) -> int:
        return len(self.ids)


@torch.no_grad()
def text_embeddings(model, states) -> torch.Tensor:
    """The retrieval head's embedding of the [IMG0] state(s): ``(N, retrieval_dim)``, unit norm."""
    model.eval()
    return model.retrieval.embed_text(_states(states)[:, 0].to(model.device)).cpu()


def retrieve(model, index: RetrievalIndex, states, k: int = 5, exclude=None) -> list[list[tuple[str, float]]]:
    """Top-``k`` (id, cosine score) of ``index`` for each query's [IMG0] state. ``exclude``: per query, ids to skip
    (e.g. the images already in a story)."""
    scores = text_embeddings(model, states) @ index.embeddings.t()
    if exclude is not None:
        pos = {i: j for j, i in enumerate(index.ids)}
        for q, ids in enumerate(exclude):
            for i in ids:
                if i in pos:
                    scores[q, pos[i]] = float("-inf")
    top = scores.topk(min(k, len(index)), dim=1)
    return [[(index.ids[j], float(s)) for s, j in zip(row_s, row_i)] for row_s, row_i in
            zip(top.values.tolist(), top.indices.tolist())]


@torch.no_grad()
def decision_inputs(model, states, top_cosines=None) -> torch.Tensor:
    """What ``model.decision`` reads for each query: the [IMG0] state and, when the head takes it, the top
    retrieval score as the published model computes it (``logit_scale`` x the top-1 cosine of `retrieve`).
    ``top_cosines``: ``(N,)``; required when the head reads the score."""
    from .decision import decision_features

    img0 = _states(states)[:, 0].float().cpu()
    if not model.decision.retrieval_score:
        return img0
    if top_cosines is None:
        raise ValueError("the decision head reads the top retrieval score: pass top_cosines (or an index to decide)")
    scale = float(model.retrieval.scale())
    return decision_features(img0, torch.as_tensor(top_cosines, dtype=torch.float32) * scale)


@torch.no_grad()
def decide(model, states, index: RetrievalIndex | None = None, top_cosines=None
           ) -> dict[str, float] | list[dict[str, float]]:
    """The decision head on the [IMG0] state and the top retrieval score over ``index`` (needed when the head
    reads it): ``{"generate": p, "retrieve": q}`` (a list for several queries). ``top_cosines``: the top-1
    cosines `retrieve` already returned for these queries, so the index is not scored a second time."""
    model.eval()
    top = None
    if model.decision.retrieval_score:
        if top_cosines is not None:
            top = list(top_cosines)
        elif index is None:
            raise ValueError("the decision head reads the top retrieval score: decide needs a retrieval index")
        else:
            top = [hits[0][1] for hits in retrieve(model, index, states, k=1)]
    features = decision_inputs(model, states, top).to(model.device)
    probs = model.decision(features).softmax(-1).cpu().tolist()
    out = [dict(zip(CLASSES, p)) for p in probs]
    return out[0] if len(out) == 1 else out
