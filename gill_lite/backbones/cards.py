"""Names and model cards of the frozen parts.

``config_name`` is what a GILL checkpoint records about the frozen parts it was trained with: the folder's
(or hub id's) basename plus a short hash of the model config and, for local folders, of the weights, so a
checkpoint refuses to load onto a different LM, CLIP or generator even when two folders share a name or a
stand-in was retrained with the same architecture.

Each stand-in folder carries ``MODEL_CARD.md`` (for people) rendered from ``model_card.json`` (for code:
bench/standins.py adds its figures there and re-renders the card).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gill_lite.io import atomic_write_json, atomic_write_text

_VOLATILE = ("transformers_version", "_diffusers_version", "_name_or_path", "_commit_hash", "dtype", "torch_dtype")


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_SAMPLE = 1 << 20


def weights_digest(folder, subfolders: tuple[str, ...] = ("",)) -> str:
    """A short hash of the weight files under ``folder`` (or only its ``subfolders``): their names, sizes and
    three 1 MiB samples (start, middle, end) of each. Cheap on multi-GB checkpoints, and it tells retrained
    weights of one architecture apart (same config, other weights), which the config hash cannot."""
    h = hashlib.sha1()
    folder = Path(folder)
    for sub in subfolders:
        for path in sorted(p for p in (folder / sub).rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file()):
            size = path.stat().st_size
            h.update(f"{path.relative_to(folder).as_posix()}:{size}".encode())
            with open(path, "rb") as f:
                for offset in sorted({0, max(0, size // 2 - _SAMPLE // 2), max(0, size - _SAMPLE)}):
                    f.seek(offset)
                    h.update(f.read(_SAMPLE))
    return h.hexdigest()[:8]


def _strip_volatile(value):
    """A config without the keys that change with where or how it was loaded (``_name_or_path`` is an absolute
    path in a local folder's config), at every depth: the sub-configs of a pipeline carry their own."""
    if isinstance(value, dict):
        return {k: _strip_volatile(v) for k, v in value.items()
                if k not in _VOLATILE and not (isinstance(k, str) and k.startswith("_"))}
    if isinstance(value, (list, tuple)):
        return [_strip_volatile(v) for v in value]
    return value


def config_name_for(source: str, config: dict, weights: str | None = None) -> str:
    """``"<basename>-<8 hex>"``: basename of the path / hub id, hash of the config without volatile keys and,
    for a local folder, of its weights (``weights``: a `weights_digest`; a hub id names its weights itself)."""
    clean = _strip_volatile(config)
    if weights:
        clean["_weights"] = weights
    digest = hashlib.sha1(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{Path(str(source).rstrip('/')).name}-{digest}"


def _render(card: dict) -> str:
    lines = [f"# {card['title']}", "", card.get("summary", ""), "", "## Config", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in card["config"].items()]
    lines += ["", "## Data", "", card["data"], "", "## Training", "", card["recipe"], "", "## Measured", ""]
    lines += [f"- {k}: {v}" for k, v in card["figures"].items()]
    if card.get("samples"):
        lines += ["", "## Samples (greedy)", ""] + [f"- `{s!r}`" for s in card["samples"]]
    lines += ["", "Built by `gill_lite.backbones.build.build_standins`; figures re-measured by `bench/standins.py`.", ""]
    return "\n".join(line for line in lines if line is not None)


def write_model_card(folder, title: str, config: dict, data: str, recipe: str, figures: dict,
                     samples: list[str] | None = None, summary: str = "") -> None:
    """Write ``model_card.json`` and ``MODEL_CARD.md`` into ``folder``."""
    card = {"title": title, "summary": summary, "config": {k: str(v) for k, v in config.items()},
            "data": data, "recipe": recipe, "figures": figures, "samples": samples or []}
    atomic_write_json(Path(folder) / "model_card.json", card)
    atomic_write_text(Path(folder) / "MODEL_CARD.md", _render(card))


def update_model_card(folder, figures: dict, samples: list[str] | None = None) -> None:
    """Merge measured ``figures`` (and replace ``samples``) into an existing card and re-render it."""
    path = Path(folder) / "model_card.json"
    card = json.loads(path.read_text())
    card["figures"] = {**card["figures"], **figures}
    if samples is not None:
        card["samples"] = samples
    atomic_write_json(path, card)
    atomic_write_text(Path(folder) / "MODEL_CARD.md", _render(card))


def card_summary(folder) -> str:
    """Title, training line and measured figures of a stand-in's card, as a few lines of text."""
    card = json.loads((Path(folder) / "model_card.json").read_text())
    lines = [card["title"], f"  training: {card['recipe']}", f"  data: {card['data']}"]
    lines += [f"  {k}: {v}" for k, v in card["figures"].items()]
    return "\n".join(lines)
