"""Training checkpoints: trainable parts + optimizer + RNG + step, safetensors and JSON only, written atomically.

Layout of one checkpoint ``<dir>/step-000500/``:
  trainable.safetensors, gill_config.json   the model's trainable parts (`GillModel.save_trainable`)
  optimizer.safetensors                     AdamW moments, one tensor per (parameter name, state key)
  rng.safetensors                           torch CPU (and CUDA) generator states
  state.json                                step, parameter names, optimizer hyper-parameters, fingerprint
``state.json`` is written last: a folder without it is an interrupted write and is ignored.
The learning-rate schedule is a pure function of the step (see `loop.lr_factor`), so the step is its state.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ..io import atomic_save_file, atomic_write_json

STATE = "state.json"


def save_checkpoint(directory, model, optimizer, named_params: dict, step: int, extra: dict | None = None,
                    keep: int = 2) -> Path:
    """Write checkpoint ``step`` under ``directory`` and keep only the newest ``keep`` ones."""
    directory = Path(directory)
    path = directory / f"step-{step:06d}"
    model.save_trainable(path)
    ids = {id(p): name for name, p in named_params.items()}
    state = optimizer.state_dict()
    tensors, groups = {}, []
    order = [ids[id(p)] for g in optimizer.param_groups for p in g["params"]]
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"{order[index]}::{key}"] = torch.as_tensor(value).detach().cpu()
    for g in state["param_groups"]:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"}
                      | {"params": [order[i] for i in g["params"]]})
    atomic_save_file(tensors, path / "optimizer.safetensors")
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng |= {f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    atomic_save_file(rng, path / "rng.safetensors")
    atomic_write_json(path / STATE, {"step": step, "param_groups": groups, **(extra or {})})
    for old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def list_checkpoints(directory) -> list[Path]:
    """Complete checkpoints under ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.exists():
        return []
    return sorted(p for p in directory.glob("step-*") if (p / STATE).exists())


def read_state(path) -> dict:
    return json.loads((Path(path) / STATE).read_text())


def load_checkpoint(path, model, optimizer, named_params: dict) -> int:
    """Restore model trainables, optimizer and RNG from checkpoint ``path``; returns the step to continue from."""
    from safetensors.torch import load_file

    path = Path(path)
    model.load_trainable_state(load_file(str(path / "trainable.safetensors")), untrained_decision=True)
    state = read_state(path)
    tensors = load_file(str(path / "optimizer.safetensors"))
    order = [name for g in state["param_groups"] for name in g["params"]]
    current = [n for g in optimizer.param_groups for n in [_name_of(named_params, p) for p in g["params"]]]
    if order != current:
        raise ValueError(f"checkpoint {path} was made for other trainable parameters; cannot resume from it")
    opt_state = {"state": {}, "param_groups": []}
    for i, name in enumerate(order):
        keys = {k.split("::", 1)[1]: v for k, v in tensors.items() if k.split("::", 1)[0] == name}
        if keys:
            opt_state["state"][i] = keys
    start = 0
    for g in state["param_groups"]:
        n = len(g["params"])
        opt_state["param_groups"].append({**{k: (tuple(v) if k == "betas" else v) for k, v in g.items()},
                                          "params": list(range(start, start + n))})
        start += n
    optimizer.load_state_dict(opt_state)
    rng = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available() and "cuda0" in rng:
        torch.cuda.set_rng_state_all([rng[f"cuda{i}"] for i in range(torch.cuda.device_count()) if f"cuda{i}" in rng])
    return int(state["step"])


def _name_of(named_params: dict, param) -> str:
    for name, p in named_params.items():
        if p is param:
            return name
    raise KeyError("parameter not in named_params")
