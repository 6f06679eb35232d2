"""Feature caches of the frozen encoders, computed once per dataset and reused by every stage and run.

Two caches per dataset: the image encoder's pooled vectors (N, image_hidden) and the generator's text-encoder
outputs of the captions (N, max_length, text_width), the generation targets (the published code precomputes
these too). Files: ``profile.run_dir/"cache"/<dataset>--<frozen config_name>--{image,text}.safetensors``
(safetensors, with the dataset's ids digest in the metadata; a mismatch recomputes). Large sets are sharded
(``shard_size`` rows per file) and read row by row from memory-mapped files.

A third cache serves the stages where nothing upstream of the [IMG] states learns (the staged generation and
retrieval stages: the LM is frozen and so are the [IMG] rows): the LM's 8 [IMG] states after every caption
(N, 1 + pair matchings, n_img, lm_hidden): alone and as the second of a concatenated pair), named by a hash of
the [IMG] rows, so the mapper and the retrieval heads train without an LM pass per step (`img_states`).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..io import atomic_save_file


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[-80:]


def ids_digest(ids) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


class CachedFeatures:
    """Rows of cached features; ``features[indices]`` -> a float tensor. In memory when small."""

    def __init__(self, paths: list[Path], shard_size: int, in_memory: bool):
        from safetensors import safe_open

        self.paths, self.shard_size = paths, shard_size
        self.handles = [safe_open(str(p), framework="pt") for p in paths]
        self.n = sum(h.get_slice("features").get_shape()[0] for h in self.handles)
        self.data = torch.cat([h.get_tensor("features") for h in self.handles]) if in_memory else None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, indices) -> torch.Tensor:
        idx = torch.as_tensor(indices, dtype=torch.long)
        if self.data is not None:
            return self.data[idx].float()
        rows = []
        for i in idx.tolist():
            shard, row = divmod(i, self.shard_size)
            rows.append(self.handles[shard].get_slice("features")[row : row + 1])
        return torch.cat(rows).float()


def cached_features(dataset, encode, kind: str, config_name: str, cache_dir, batch_size: int = 256,
                    shard_size: int = 100_000, dtype=torch.float32, in_memory_bytes: int = 2 << 30,
                    is_main: bool = True, wait=lambda: None) -> CachedFeatures:
    """Compute (once) and load the features ``encode(indices)`` of every row of ``dataset``.

    ``encode`` maps a list of row indices to a tensor (n, ...). ``is_main``/``wait`` let several processes
    share one computation (the main one writes, the others wait for it).
    """
    cache_dir = Path(cache_dir)
    stem = f"{_safe(dataset.name)}--{_safe(config_name)}--{kind}"
    digest = ids_digest(dataset.ids)
    n_shards = max(1, -(-len(dataset) // shard_size))
    paths = [cache_dir / (f"{stem}.safetensors" if n_shards == 1 else f"{stem}-{s:05d}.safetensors")
             for s in range(n_shards)]
    if is_main and not _valid(paths, digest):
        for s, path in enumerate(paths):
            if _valid([path], digest):
                continue  # an interrupted run keeps its finished shards
            rows = range(s * shard_size, min(len(dataset), (s + 1) * shard_size))
            chunks = []
            for start in tqdm(range(rows.start, rows.stop, batch_size), desc=f"cache {kind} {s + 1}/{n_shards}",
                              mininterval=5):
                with torch.no_grad():
                    chunks.append(encode(list(range(start, min(rows.stop, start + batch_size)))).detach().cpu().to(dtype))
            atomic_save_file({"features": torch.cat(chunks)}, path, metadata={"ids": digest, "n": str(len(dataset))})
    wait()
    total = sum(p.stat().st_size for p in paths)
    return CachedFeatures(paths, shard_size, in_memory=total <= in_memory_bytes)


def _valid(paths: list[Path], digest: str) -> bool:
    from safetensors import safe_open

    for p in paths:
        if not p.exists():
            return False
        with safe_open(str(p), framework="pt") as f:
            if (f.metadata() or {}).get("ids") != digest:
                return False
    return True


def image_features(dataset, image_encoder, cache_dir, **kwargs) -> CachedFeatures:
    """The image encoder's pooled vectors of every image of ``dataset`` (cached)."""
    return cached_features(dataset, lambda idx: image_encoder.encode(dataset.load_images(idx)), "image",
                           image_encoder.config_name, cache_dir, **kwargs)


def text_targets(dataset, generator, cache_dir, **kwargs) -> CachedFeatures:
    """The generator's text-encoder outputs (padded to ``max_length``) of every caption (cached)."""
    return cached_features(dataset, lambda idx: generator.encode_text([dataset.captions[i] for i in idx]), "text",
                           generator.config_name, cache_dir, **kwargs)


def img_rows_digest(model) -> str:
    """A short hash of the learned [IMG] rows (and untied head rows): what the cached [IMG] states depend on
    besides the frozen LM and the captions."""
    h = hashlib.sha256()
    for name, t in sorted(model.img_tokens.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def img_states(dataset, model, cache_dir, max_text_len: int, n_matchings: int = 0, seed: int = 0,
               **kwargs) -> CachedFeatures:
    """The frozen LM's [IMG] states of every caption of ``dataset``, alone and in its pairs (cached).

    Row ``i`` is ``(1 + n_matchings, n_img, lm_hidden)``: the states after ``BOS caption_i [IMG0..7]`` (also
    those of caption ``i`` as the *first* of a pair: attention is causal), then for each fixed matching ``k``
    (`gill_lite.train.pairs.matching`) the states of caption ``i`` as the *second* of its pair, ``BOS
    caption_partner [IMG0..7] caption_i [IMG0..7]`` (its own states again when it has no partner).
    Valid only while the [IMG] rows do not learn; the file name carries their hash, ``max_text_len`` and the
    matchings, so a retrained `img_tokens` stage gets a new cache. Right padding cannot change them (causal
    attention, positions from the mask), so they equal the states of the training batches up to float rounding."""
    from .pairs import matching
    from .steps import img_forward

    partners = [matching(len(dataset), k, seed) for k in range(n_matchings)]

    def encode(idx):
        caps = [dataset.captions[i] for i in idx]
        out = [img_forward(model, caps, max_text_len, with_grad=False)[2]]
        for partner in partners:
            mates = [int(partner[i]) for i in idx]
            texts, groups = [], []
            for i, m in zip(idx, mates):
                if m < 0:
                    groups.append((len(texts),))
                    texts.append(dataset.captions[i])
                else:
                    groups.append((len(texts), len(texts) + 1))
                    texts += [dataset.captions[m], dataset.captions[i]]
            states = img_forward(model, texts, max_text_len, with_grad=False, groups=groups)[2]
            out.append(states[[g[-1] for g in groups]])
        return torch.stack(out, 1)

    name = f"{model.frozen_names['lm']}-img{img_rows_digest(model)}-len{max_text_len}-pairs{n_matchings}s{seed}"
    kwargs.setdefault("batch_size", 128)
    return cached_features(dataset, encode, "imgstates", name, cache_dir, **kwargs)
