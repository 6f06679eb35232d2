"""``runs/<profile>/results.json``: every stage's metrics (the numbers it measured) in one file, written atomically.

The file calls a stage's metrics its ``figures`` (the key stays, so existing results files read on); pictures are
`gill_lite.figures`, which registers the PNGs it saves under ``images``.

Each notebook records its own numbers (never parsed from outputs)::

    from gill_lite.pipeline import record_results
    record_results(profile, "vist_generation", {"clip_similarity": {"gill_5_captions": 0.61}})

The schema (``SCHEMA_VERSION`` 1), checked by `validate_results`::

    {
      "schema_version": 1,
      "profile": "tiny",
      "created": "2025-01-01T12:00:00+00:00",          # ISO 8601, when the file was first written
      "machine": {"platform": str, "python": str, "cpu_count": int, "torch": str | null, "gpu": str | null},
      "stages": {                                        # one entry per stage that recorded something
        "<stage>": {"figures": {<key>: <json value>}, "updated": "<iso time>"}
      },
      "timings": {"<notebook>": <wall seconds, float >= 0>},   # written by `reproduce`
      "images": {"<name>": {"path": str, "stage": str | null}} # written by `save_figure` (optional key)
    }

A figure is any JSON value: a number, a string, a list, or a nested dict (a table: the report flattens it to
dotted keys such as ``clip_similarity.gill_5_captions``). A dict with a ``"value"`` key is one figure with
extras: ``{"value": 0.61, "paper": 0.641, "ci": [0.58, 0.64]}``. NaN and infinities are refused (not JSON).
Recording merges: keys already there are replaced, nested dicts are merged, other stages are untouched.
"""
from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from gill_lite.io import atomic_write_text, file_lock

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
# the notebooks `gill_lite.pipeline.reproduce` runs, in order: the keys of ``timings`` (the report orders by them)
NOTEBOOKS = [
    "00_world",
    "01_image_input",
    "02_img_tokens",
    "03_generation",
    "04_retrieval",
    "05_decision",
    "06_vist_eval",
    "07_dialogue",
]
_TOP_KEYS = {"schema_version", "profile", "created", "machine", "stages", "timings", "images"}
_REQUIRED = {"profile", "created", "machine", "stages", "timings"}


class ResultsSchemaError(ValueError):
    """results.json does not follow the documented schema."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def machine_info() -> dict:
    """Where this run happens: platform, Python, CPU count, torch version, GPU name (if torch sees one)."""
    try:
        from importlib.metadata import version

        torch_version = version("torch")
    except Exception:  # torch missing is a valid (if useless) machine
        torch_version = None
    gpu = None
    torch = sys.modules.get("torch")  # only ask CUDA if torch is already loaded: importing it costs seconds
    if torch is not None and torch.cuda.is_available():
        gpu = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    elif torch is None and shutil.which("nvidia-smi"):  # the pipeline's parent process never imports torch
        try:
            names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                   text=True, timeout=10).stdout.split("\n")
            names = [n.strip() for n in names if n.strip()]
            gpu = f"{len(names)} x {names[0]}" if names else None
        except (OSError, subprocess.SubprocessError):
            gpu = None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count() or 1,
        "torch": torch_version,
        "gpu": gpu,
    }


def _run_dir(profile) -> Path:
    """A `Profile` or a profile name."""
    if isinstance(profile, str):
        from gill_lite.config import get_profile

        profile = get_profile(profile)
    return Path(profile.run_dir)


def _profile_name(profile) -> str:
    return profile if isinstance(profile, str) else profile.name


def results_path(profile) -> Path:
    return _run_dir(profile) / RESULTS_FILE


def new_results(profile) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "profile": _profile_name(profile),
        "created": now_iso(),
        "machine": machine_info(),
        "stages": {},
        "timings": {},
        "images": {},
    }


def _check_json_value(value, where: str) -> None:
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ResultsSchemaError(f"{where}: {value} is not a finite number (JSON has no NaN/inf)")
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_json_value(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ResultsSchemaError(f"{where}: key {k!r} is not a string")
            _check_json_value(v, f"{where}.{k}")
        return
    raise ResultsSchemaError(f"{where}: {type(value).__name__} is not a JSON value")


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ResultsSchemaError(message)


def validate_results(obj) -> dict:
    """Check ``obj`` against the schema in this module's docstring; return it, or raise `ResultsSchemaError`."""
    _require(isinstance(obj, dict), f"results must be a JSON object, got {type(obj).__name__}")
    missing = _REQUIRED - set(obj)
    _require(not missing, f"results.json misses key(s) {sorted(missing)}")
    unknown = set(obj) - _TOP_KEYS
    _require(not unknown, f"results.json has unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    _require(obj.get("schema_version", SCHEMA_VERSION) == SCHEMA_VERSION,
             f"results.json schema_version {obj.get('schema_version')!r}, this code reads {SCHEMA_VERSION}")
    _require(isinstance(obj["profile"], str) and obj["profile"], "results.json 'profile' must be a non-empty string")
    for key in ("created",):
        _require(isinstance(obj[key], str), f"results.json {key!r} must be an ISO time string")
        try:
            datetime.fromisoformat(obj[key])
        except ValueError:
            raise ResultsSchemaError(f"results.json {key!r} is not an ISO time: {obj[key]!r}") from None
    machine = obj["machine"]
    _require(isinstance(machine, dict), "results.json 'machine' must be an object")
    _require(isinstance(machine.get("platform"), str), "machine.platform must be a string")
    _require(isinstance(machine.get("cpu_count"), int) and machine["cpu_count"] > 0,
             "machine.cpu_count must be a positive integer")
    _require(machine.get("torch") is None or isinstance(machine["torch"], str), "machine.torch must be a string or null")
    _check_json_value(machine, "machine")
    stages = obj["stages"]
    _require(isinstance(stages, dict), "results.json 'stages' must be an object")
    for name, stage in stages.items():
        _require(isinstance(stage, dict) and set(stage) == {"figures", "updated"},
                 f"stage {name!r} must be {{'figures': {{...}}, 'updated': iso}}, got {stage!r:.200}")
        _require(isinstance(stage["figures"], dict), f"stage {name!r}: 'figures' must be an object")
        _require(isinstance(stage["updated"], str), f"stage {name!r}: 'updated' must be an ISO time string")
        _check_json_value(stage["figures"], f"stages.{name}.figures")
    timings = obj["timings"]
    _require(isinstance(timings, dict), "results.json 'timings' must be an object")
    for name, seconds in timings.items():
        _require(isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
                 and math.isfinite(seconds) and seconds >= 0,
                 f"timings.{name} must be a number of seconds >= 0, got {seconds!r}")
    images = obj.get("images", {})
    _require(isinstance(images, dict), "results.json 'images' must be an object")
    for name, image in images.items():
        _require(isinstance(image, dict) and isinstance(image.get("path"), str)
                 and set(image) <= {"path", "stage"} and (image.get("stage") is None or isinstance(image["stage"], str)),
                 f"images.{name} must be {{'path': str, 'stage': str|null}}, got {image!r:.200}")
    return obj


def load_results(profile, missing_ok: bool = True) -> dict:
    """Read and validate results.json; a missing file gives a fresh (empty) results object if ``missing_ok``."""
    path = results_path(profile)
    if not path.exists():
        if missing_ok:
            return new_results(profile)
        raise FileNotFoundError(f"no results yet at {path}: run `gill-lite reproduce --profile {_profile_name(profile)}`")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ResultsSchemaError(f"{path} is not valid JSON ({err}); move it away to start afresh") from None
    try:
        return validate_results(obj)
    except ResultsSchemaError as err:
        raise ResultsSchemaError(f"{path}: {err}") from None


def to_jsonable(value):
    """numpy/torch scalars and arrays, tuples and Paths -> plain JSON values (so notebooks can pass them as is)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy and torch
        return to_jsonable(value.tolist())
    if hasattr(value, "item") and not isinstance(value, (bool, int, float, str)):
        return value.item()
    return value


def _merge(old: dict, new: dict) -> dict:
    out = dict(old)
    for key, value in new.items():
        # a {"value": ...} dict is one figure, replaced whole; other dicts are tables, merged key by key
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "value" not in value:
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _locked(path: Path):
    """Serialise read-modify-write between processes (a notebook and a bench writing at once)."""
    return file_lock(path.with_name(path.name + ".lock"))


def update_results(profile, change) -> dict:
    """Apply ``change(results) -> None`` under a lock, validate, and write atomically. Returns the new results."""
    path = results_path(profile)
    with _locked(path):
        results = load_results(profile)
        change(results)
        validate_results(results)
        # json.dumps before the write: an unserialisable value fails here, leaving the old file untouched
        text = json.dumps(results, indent=2, allow_nan=False) + "\n"
        atomic_write_text(path, text)
    return results


def record_results(profile, stage: str, figures: dict) -> dict:
    """Merge one stage's ``figures`` into ``profile.run_dir/results.json`` (atomic; Ctrl-C safe). Returns all results.

    ``profile`` is a `Profile` or a profile name; ``figures`` a dict of JSON-able values (numpy/torch scalars
    are converted). Re-recording a stage replaces the keys given and keeps the others.
    """
    if not isinstance(stage, str) or not stage.strip():
        raise ValueError(f"stage must be a non-empty string, got {stage!r}")
    if not isinstance(figures, dict):
        raise TypeError(f"figures must be a dict, got {type(figures).__name__}")
    figures = to_jsonable(figures)
    _check_json_value(figures, f"stages.{stage}.figures")

    def change(results):
        old = results["stages"].get(stage, {}).get("figures", {})
        results["stages"][stage] = {"figures": _merge(old, figures), "updated": now_iso()}

    return update_results(profile, change)


def record_timing(profile, notebook: str, seconds: float) -> dict:
    """Store one notebook's wall time (seconds) and refresh the machine description."""

    def change(results):
        results["timings"][notebook] = round(float(seconds), 3)
        results["machine"] = machine_info()

    return update_results(profile, change)


def record_image(profile, name: str, path: str, stage: str | None = None) -> dict:
    """Register a saved figure image so the report shows it (``path`` absolute or relative to the repo)."""

    def change(results):
        results.setdefault("images", {})[name] = {"path": str(path), "stage": stage}

    return update_results(profile, change)
