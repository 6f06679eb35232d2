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
                    is_main: bool = True, wait=lambda: None, metadata: dict | None = None) -> CachedFeatures:
    """Compute (once) and load the features ``encode(indices)`` of every row of ``dataset``.

    ``encode`` maps a list of row indices to a tensor (n, ...), stored as ``dtype``. Each shard is streamed to
    disk batch by batch (`_stream_shard`): memory holds one batch, not a shard (100k generation targets are
    12 GB in fp16). ``is_main``/``wait`` let several processes share one computation (the main one writes, the
    others wait for it). ``metadata`` (str -> str) is stored in every shard.
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

            def chunks(rows=rows, s=s):
                for start in tqdm(range(rows.start, rows.stop, batch_size), desc=f"cache {kind} {s + 1}/{n_shards}",
                                  mininterval=5):
                    with torch.no_grad():
                        yield encode(list(range(start, min(rows.stop, start + batch_size)))).detach().cpu().to(dtype)

            meta = {**(metadata or {}), "ids": digest, "n": str(len(dataset))}
            _stream_shard(path, len(rows), chunks(), meta)
    wait()
    total = sum(p.stat().st_size for p in paths)
    return CachedFeatures(paths, shard_size, in_memory=total <= in_memory_bytes)


_ST_DTYPES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64"}


def _stream_shard(path: Path, n_rows: int, chunks, metadata: dict) -> None:
    """Write one safetensors file holding ``features`` (n_rows, ...) from an iterator of row batches, appending
    each batch as it comes (the format is an 8-byte header length, a JSON header, then the raw bytes, so the
    header can be written first once the first batch gives the row shape). Atomic: a partial file is never
    left under ``path`` (`gill_lite.io.atomic_path`)."""
    import json
    import struct

    from ..io import atomic_path

    written = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for chunk in chunks:
            chunk = chunk.contiguous()
            if written == 0:
                if chunk.dtype not in _ST_DTYPES:
                    raise TypeError(f"cannot cache {chunk.dtype}; use one of {list(_ST_DTYPES)}")
                row_shape, row_dtype = tuple(chunk.shape[1:]), chunk.dtype
                nbytes = n_rows * chunk[:1].numel() * chunk.element_size()
                header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()},
                          "features": {"dtype": _ST_DTYPES[row_dtype], "shape": [n_rows, *row_shape],
                                       "data_offsets": [0, nbytes]}}
                blob = json.dumps(header, separators=(",", ":")).encode()
                blob += b" " * (-len(blob) % 8)  # the spec allows trailing spaces; 8-byte alignment of the data
                f.write(struct.pack("<Q", len(blob)))
                f.write(blob)
            if tuple(chunk.shape[1:]) != row_shape or chunk.dtype != row_dtype:
                raise ValueError(f"batch of shape {tuple(chunk.shape)} {chunk.dtype} after rows of {row_shape} {row_dtype}")
            # raw little-endian bytes; a uint8 view avoids numpy (which has no bfloat16)
            f.write(chunk.view(-1).view(torch.uint8).numpy().tobytes())
            written += len(chunk)
        if written != n_rows:
            raise ValueError(f"{path}: encoded {written} rows, expected {n_rows}")


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
    """The image encoder's pooled vectors of every image of ``dataset`` (cached).

    Images are first read here, so this is where an image that exists but does not decode is found (the CC3M
    loader only checks that files exist, `gill_lite.data.load_cc3m`). Such a row gets the features of the
    previous readable image (the published loader likewise substitutes another example; here the caption
    stays), is counted and printed, and is listed (row -> reason) in the returned cache's ``.unreadable`` and
    in ``<cache>.unreadable.json`` beside the cache. An unreadable image with none readable before it raises.
    """
    import json

    from ..data.formats import DataFormatError
    from ..io import atomic_write_json

    found: dict[int, str] = {}
    state = {"encoded": False}

    def encode(idx):
        state["encoded"] = True
        try:
            return _keep(image_encoder.encode(dataset.load_images(idx)))
        except DataFormatError:
            rows = []
            for i in idx:  # find the broken ones: one image at a time
                try:
                    rows.append(image_encoder.encode(dataset.load_images([i]))[0])
                except DataFormatError as err:
                    previous = rows[-1] if rows else state.get("good")
                    if previous is None:
                        raise DataFormatError(f"row {i}: {err} (and no readable image before it)") from err
                    found[i] = str(err)
                    rows.append(previous)
            return _keep(torch.stack(rows))

    def _keep(feats):
        state["good"] = feats[-1]
        return feats

    cache = cached_features(dataset, encode, "image", image_encoder.config_name, cache_dir, **kwargs)
    sidecar = cache.paths[0].with_name(cache.paths[0].name.replace(".safetensors", ".unreadable.json"))
    digest = ids_digest(dataset.ids)
    old = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    old_rows = {int(k): v for k, v in old.get("rows", {}).items()} if old.get("ids") == digest else {}
    if state["encoded"]:  # (re)computed now: finished shards kept from an interrupted run keep their old rows
        unreadable = {**old_rows, **found}
        atomic_write_json(sidecar, {"ids": digest, "rows": {str(k): v for k, v in sorted(unreadable.items())}})
    else:
        unreadable = old_rows
    if found:
        first = next(iter(found.items()))
        print(f"image cache: {len(found)} unreadable image(s) of {len(dataset)} replaced by the previous "
              f"readable one (first: row {first[0]}: {first[1]}); listed in {sidecar}")
    cache.unreadable = unreadable
    return cache


def text_targets(dataset, generator, cache_dir, dtype=None, **kwargs) -> CachedFeatures:
    """The generator's text-encoder outputs (padded to ``max_length``) of every caption (cached).

    Stored in the text encoder's own precision when that is float16 (``paper``: SD v1.5 in fp16, as the
    published preprocessing stores them: 77 x 768 x 2 B = 118 KB a caption, half of fp32), else float32;
    ``dtype`` overrides. A non-fp32 cache has its dtype in the file name, so it never mixes with an fp32 one.
    Rows read back as float32 (`CachedFeatures`)."""
    if dtype is None:
        encoder_dtype = getattr(getattr(getattr(generator, "pipeline", None), "text_encoder", None), "dtype", None)
        dtype = torch.float16 if encoder_dtype == torch.float16 else torch.float32
    kind = "text" if dtype == torch.float32 else f"text-{str(dtype).removeprefix('torch.')}"
    return cached_features(dataset, lambda idx: generator.encode_text([dataset.captions[i] for i in idx]), kind,
                           generator.config_name, cache_dir, dtype=dtype, **kwargs)


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
    """The frozen LM's [IMG] states of every row of ``dataset`` (after its ``img_texts``), alone and in its pairs
    (cached).

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
        caps = [dataset.img_texts[i] for i in idx]
        out = [img_forward(model, caps, max_text_len, with_grad=False)[2]]
        for partner in partners:
            mates = [int(partner[i]) for i in idx]
            texts, groups = [], []
            for i, m in zip(idx, mates):
                if m < 0:
                    groups.append((len(texts),))
                    texts.append(dataset.img_texts[i])
                else:
                    groups.append((len(texts), len(texts) + 1))
                    texts += [dataset.img_texts[m], dataset.img_texts[i]]
            states = img_forward(model, texts, max_text_len, with_grad=False, groups=groups)[2]
            out.append(states[[g[-1] for g in groups]])
        return torch.stack(out, 1)

    name = f"{model.frozen_names['lm']}-img{img_rows_digest(model)}-len{max_text_len}-pairs{n_matchings}s{seed}"
    if dataset.img_texts is not dataset.captions:  # [IMG] texts other than the captions (`CaptionSet.img_texts`)
        name += f"-txt{ids_digest(dataset.img_texts)[:10]}"
    kwargs.setdefault("batch_size", 128)
    return cached_features(dataset, encode, "imgstates", name, cache_dir, **kwargs)
