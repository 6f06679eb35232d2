"""Collect the generate-or-retrieve set: for each prompt, GILL's generated image, its top retrieved image, its
``[IMG0]`` hidden state and what the decision head reads (that state and the top retrieval score), on disk and
resumable.

Layout of a collection folder::

    meta.json                      what made it (format, model fingerprint, seed, batch size); a mismatch starts
                                   over, the old collection moved aside to <folder>.superseded-<n>
    images/<id>.gen.png            the generated image
    images/<id>.ret.png            the top-1 retrieved image
    features/<first>-<last>.safetensors   "img0": (B, lm_hidden) [IMG0] states of one batch; "decision":
                                   (B, head inputs) the decision head's input (`GillPipeline.decision_inputs`)
    manifest.jsonl                 one line per finished prompt (appended + fsynced after its files exist)

A prompt is done when its manifest line is there; every file is written atomically (`gill_lite.io`), so an
interrupted run leaves whole files only and a rerun skips finished prompts. Batches are fixed slices of the
prompt list with their own seed, so an interrupted-then-resumed collection equals an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from gill_lite.io import atomic_path, atomic_save_file, atomic_write_json

FORMAT_VERSION = 2  # 2: the decision head's input (with the top retrieval score) is stored


class Collector(Protocol):
    """What collection needs from GILL: the methods of a `gill_lite.inference.GillPipeline` with a retrieval
    index holding its images (tests use a fake with the same methods)."""

    def img_states_batch(self, texts: list[str]):  # -> FloatTensor (B, n_img_tokens, lm_hidden)
        ...

    def generate(self, states, seed: int) -> np.ndarray:  # -> uint8 (B, H, W, 3)
        ...

    def retrieve(self, states, k: int = 1) -> list[list[tuple[str, float]]]:  # -> per query, top-k (id, score)
        ...

    def decision_inputs(self, states, top_cosines):  # -> FloatTensor (B, decision head inputs)
        ...

    def index_images(self, ids) -> np.ndarray:  # -> uint8 (B, H, W, 3), the images behind index ids
        ...


@dataclass
class Collection:
    """A finished (or partly finished) collection, in prompt order."""

    root: Path
    records: list[dict]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]

    @property
    def texts(self) -> list[str]:
        return [r["text"] for r in self.records]

    @property
    def categories(self) -> list[str]:
        return [r["category"] for r in self.records]

    def shapes(self):
        """The prompts' ground-truth `Shape`s (None for real data without them)."""
        from gill_lite.world.attributes import Shape

        return [Shape(**r["shape"]) if r.get("shape") else None for r in self.records]

    def images(self, kind: str) -> np.ndarray:
        """``kind`` "gen" or "ret": uint8 (N, H, W, 3)."""
        if kind not in ("gen", "ret"):
            raise ValueError(f"kind must be 'gen' or 'ret', not {kind!r}")
        return np.stack([read_png(self.root / r[kind]) for r in self.records])

    def image(self, i: int, kind: str) -> np.ndarray:
        return read_png(self.root / self.records[i][kind])

    def features(self):
        """What the decision head reads (the ``[IMG0]`` state and the top retrieval score), FloatTensor
        (N, head inputs), in record order."""
        return self._tensor("decision")

    def img0_states(self):
        """The ``[IMG0]`` states alone, FloatTensor (N, lm_hidden), in record order."""
        return self._tensor("img0")

    def _tensor(self, key: str):
        import torch
        from safetensors.torch import load_file

        cache: dict[str, "torch.Tensor"] = {}
        rows = []
        for r in self.records:
            if r["features"] not in cache:
                cache[r["features"]] = load_file(str(self.root / r["features"]))[key]
            rows.append(cache[r["features"]][r["row"]])
        return torch.stack(rows) if rows else torch.zeros(0)


def read_png(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def write_png(path, image: np.ndarray) -> None:
    """Write uint8 (H, W, 3) as PNG, atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")


def model_fingerprint(model) -> str:
    """A short hash of GILL's trainable tensors except the decision head (which is trained on the collection):
    a retrained GILL gets a new collection, a retrained decision head does not."""
    import torch

    if hasattr(model, "trainable_state_dict"):
        state = model.trainable_state_dict()
    else:
        state = {k: p for k, p in model.named_parameters() if p.requires_grad}
    h = hashlib.sha1()
    with torch.no_grad():
        for name in sorted(state):
            if not name.startswith("decision."):
                h.update(name.encode())
                h.update(state[name].detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _repair_tail(manifest: Path) -> None:
    """Cut a half-written last line (the process died mid-append), so the next append starts clean."""
    if not manifest.exists():
        return
    data = manifest.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(manifest, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def read_manifest(root: str | os.PathLike) -> dict[str, dict]:
    """Finished prompts by id (unreadable lines and lines whose files are gone are ignored)."""
    root = Path(root)
    done: dict[str, dict] = {}
    manifest = root / "manifest.jsonl"
    if not manifest.exists():
        return done
    for line in manifest.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if all((root / record[k]).exists() for k in ("gen", "ret", "features")):
            done[record["id"]] = record
    return done


def append_lines(path: Path, lines: list[str]) -> None:
    """Append whole lines and make them durable (flush + fsync) before returning."""
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())


def _prepare(root: Path, meta: dict) -> None:
    """Start over when the folder was made by something else (another model, seed, batch size or format). The
    old collection is moved aside to ``<root>.superseded-<n>``, not deleted: finished work is never lost."""
    meta_path = root / "meta.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old == meta:
            _repair_tail(root / "manifest.jsonl")
            return
        n = 1
        while root.with_name(f"{root.name}.superseded-{n}").exists():
            n += 1
        aside = root.with_name(f"{root.name}.superseded-{n}")
        root.rename(aside)
        print(f"collection in {root} was made with {old}, not {meta}: starting over (the old one is in {aside})")
        for sub in ("images", "features"):
            (root / sub).mkdir(parents=True, exist_ok=True)
    atomic_write_json(meta_path, meta)


def collect_decisions(prompts: Sequence, out_dir: str | os.PathLike, collector: Collector, seed: int = 0,
                      batch_size: int = 32, fingerprint: str = "", progress: bool = True) -> Collection:
    """Generate, retrieve and keep the ``[IMG0]`` state for every prompt not yet in ``out_dir``; return all.

    ``prompts``: `gill_lite.world.prompts.DecisionPrompt`s (``id``, ``text``, ``category``, ``shape``; real
    PartiPrompts have ``shape`` None). ``collector``: a `gill_lite.inference.GillPipeline` whose index holds the
    images to retrieve (or a fake with its methods, `Collector`). ``fingerprint`` names the model (see
    `model_fingerprint`).
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        raise ValueError("prompt ids must be unique")
    root = Path(out_dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "features").mkdir(parents=True, exist_ok=True)
    _prepare(root, {"format": FORMAT_VERSION, "fingerprint": fingerprint, "seed": seed, "batch_size": batch_size})
    done = read_manifest(root)
    batches = [(k, prompts[s:s + batch_size]) for k, s in enumerate(range(0, len(prompts), batch_size))]
    todo = [(k, [p for p in batch if p.id not in done]) for k, batch in batches]
    todo = [(k, batch) for k, batch in todo if batch]
    for k, batch in tqdm(todo, desc="collect", unit="batch", disable=not progress or not todo):
        records = _collect_batch(root, batch, collector, seed=seed * 1_000_003 + k)
        append_lines(root / "manifest.jsonl", [json.dumps(r) for r in records])
        done.update({r["id"]: r for r in records})
    return Collection(root, [done[i] for i in ids])


def _collect_batch(root: Path, batch: list, collector: Collector, seed: int) -> list[dict]:
    import torch

    texts = [p.text for p in batch]
    with torch.no_grad():
        states = collector.img_states_batch(texts)
        generated = collector.generate(states, seed)
        top = [hits[0] for hits in collector.retrieve(states, k=1)]
        retrieved_ids, top_scores = [rid for rid, _ in top], [score for _, score in top]
        retrieved = collector.index_images(retrieved_ids)
        inputs = collector.decision_inputs(states, top_scores)
    if len(generated) != len(batch) or len(retrieved) != len(batch):
        raise RuntimeError(f"collector returned {len(generated)} generated / {len(retrieved)} retrieved images "
                           f"for {len(batch)} prompts")
    for p, gen, ret in zip(batch, generated, retrieved):
        write_png(root / "images" / f"{p.id}.gen.png", gen)
        write_png(root / "images" / f"{p.id}.ret.png", ret)
    feature_file = f"features/{batch[0].id}-{batch[-1].id}.safetensors"
    atomic_save_file({"img0": states[:, 0].float().cpu(), "decision": inputs.float().cpu()}, root / feature_file,
                     metadata={"ids": json.dumps([p.id for p in batch])})
    records = []
    for row, (p, rid, score) in enumerate(zip(batch, retrieved_ids, top_scores)):
        shape = p.shape.to_dict() if getattr(p, "shape", None) is not None else None
        records.append({
            "id": p.id, "text": p.text, "category": getattr(p, "category", ""), "shape": shape,
            "retrieved_id": str(rid), "retrieved_score": float(score), "gen": f"images/{p.id}.gen.png", "ret": f"images/{p.id}.ret.png",
            "features": feature_file, "row": row,
        })
    return records
