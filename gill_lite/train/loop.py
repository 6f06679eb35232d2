"""GILL's training loop (one for every stage) and `train_stage`, which finds finished stages instead of retraining.

Stages (each trains its own parts with its one loss, starting from the previous stage's finished checkpoint so
that the last stage holds the whole model; parts of earlier stages stay fixed):

=============  ================================  =================  ==========================
stage          trains                            loss               starts from
=============  ================================  =================  ==========================
captioning     visual prefix                     captioning CE      fresh parts
img_tokens     [IMG] rows                        [IMG] prediction   captioning
generation     GillMapper                        generation (L2)    img_tokens
retrieval      retrieval heads + logit scale     InfoNCE            generation
joint          all of the above                  the four, summed   fresh parts (the paper's recipe),
                                                                    or ``train.joint_from``'s checkpoint
=============  ================================  =================  ==========================

Optimiser: AdamW(lr, betas (0.9, 0.95), weight decay 0.01) on the trainable parameters only. The frozen
embedding rows are not parameters of the optimiser at all (see `gill_lite.model.img_tokens`), so decoupled
weight decay cannot shrink them (the published code's quirk); the [IMG] rows and the logit scale get no decay
(the rows are rescaled to a fixed norm after each step anyway; CLIP does not decay its temperature). Schedule:
linear warm-up over ``warmup_steps``, then x``decay_factor`` every ``decay_every`` steps after the warm-up
(GradualWarmupScheduler + StepLR, as published). Gradient clipping at ``grad_clip``.

Batches and pairs (`gill_lite.train.pairs`): every step joins a share (``concat_fraction``) of its examples in
pairs, in every loss, as the published code does (`gill_lite.train.steps`).

Caches (`gill_lite.train.caches`): the frozen encoders' outputs are computed once per dataset; in the staged
generation and retrieval stages, where neither the LM nor the [IMG] rows learn, the LM's [IMG] states are cached
too (each row alone and as the second of its pair in each fixed matching), so those stages cost a mapper / head
step each (the joint run, where the rows learn, cannot use them).

Accelerate provides the device, the process group, bf16 autocast and gradient reduction: one process on CPU,
``accelerate launch`` for several GPUs (each process takes its slice of every global batch; gradients of the
trainable parameters are averaged across processes; the contrastive loss all-gathers its embeddings).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import resource
import shutil
import time
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path

import torch

from ..io import file_lock
from ..model import GillModel
from ..model.gill import CONFIG_FILE
from .caches import image_features, img_states, text_targets
from .checkpoints import list_checkpoints, load_checkpoint, read_state, save_checkpoint
from .data import training_set, world_identity
from .pairs import ALONE, plan_batch
from .steps import STAGE_LOSSES, compute_losses

STAGES = ("captioning", "img_tokens", "generation", "retrieval", "joint")
PREVIOUS = {"captioning": None, "img_tokens": "captioning", "generation": "img_tokens", "retrieval": "generation",
            "joint": None}
STAGE_PARTS = {
    "captioning": ("prefix",),
    "img_tokens": ("img_tokens", "mapper", "retrieval"),  # the mapper and heads learn beside the rows (steps.py)
    "generation": ("mapper",),
    "retrieval": ("retrieval",),
    "joint": ("prefix", "img_tokens", "mapper", "retrieval"),
}
LOG_FILE = "log.jsonl"
PROCESS_GROUP_TIMEOUT_HOURS = 4


def states_cacheable(stage: str, train_cfg=None) -> bool:
    """Whether ``stage``'s losses read the LM only through [IMG] states that cannot change while it trains
    (no captioning or [IMG] prediction loss, [IMG] rows not trained) and, when pairs are joined, partners come
    from fixed matchings (``train_cfg.pair_matchings > 0``, `gill_lite.train.pairs`): then they can be cached."""
    fixed = train_cfg is None or train_cfg.concat_fraction == 0 or train_cfg.pair_matchings > 0
    return fixed and not ({"caption", "img"} & set(STAGE_LOSSES[stage])) and "img_tokens" not in STAGE_PARTS[stage]


LATEST = "LATEST"  # in a stage's folder: the fingerprint of the configuration trained or loaded last


def stage_dir(profile, stage: str, fingerprint_: str | None = None) -> Path:
    """``runs/<profile>/gill/<stage>/<fingerprint>``: one folder per configuration of a stage, so changing a
    value never throws a finished stage away. Without ``fingerprint_``: the configuration used last (``LATEST``)."""
    root = profile.run_dir / "gill" / stage
    if fingerprint_ is None:
        latest = root / LATEST
        if not latest.exists():
            raise FileNotFoundError(f"no {stage} stage has been trained or loaded under {root} yet")
        fingerprint_ = latest.read_text().strip()
    return root / fingerprint_


def _mark_latest(out: Path) -> None:
    from ..io import atomic_write_text

    atomic_write_text(out.parent / LATEST, out.name + "\n")


def steps_for(train_cfg, stage: str) -> int:
    """``train_cfg.stage_steps`` (pairs stage -> steps) overrides ``train_cfg.steps`` per stage."""
    return int(dict(train_cfg.stage_steps).get(stage, train_cfg.steps))


def decay_every_for(train_cfg, stage: str | None = None) -> int:
    """``train_cfg.stage_decay_every`` (pairs stage -> interval) overrides ``train_cfg.decay_every`` per stage."""
    return int(dict(train_cfg.stage_decay_every).get(stage, train_cfg.decay_every))


def lr_factor(step: int, train_cfg, stage: str | None = None) -> float:
    """Linear warm-up to 1 over ``warmup_steps``, then x``decay_factor`` every ``decay_every`` steps (the
    stage's own interval when ``stage`` is given and has one)."""
    c = train_cfg
    if step < c.warmup_steps:
        return (step + 1) / c.warmup_steps
    return c.decay_factor ** ((step - c.warmup_steps) // decay_every_for(c, stage))


def trainable_parameters(model: GillModel, stage: str) -> dict[str, torch.nn.Parameter]:
    """Set ``requires_grad`` for ``stage``'s parts only; returns them by name."""
    modules = model.trainable_modules()
    named = {}
    for name, module in modules.items():
        train = name in STAGE_PARTS[stage]
        for pname, p in module.named_parameters():
            p.requires_grad_(train)
            if train:
                named[f"{name}.{pname}"] = p
    return named


def make_optimizer(named: dict, train_cfg) -> torch.optim.AdamW:
    """AdamW with two groups: decay on the layers' weights and biases, none on the [IMG] rows and logit scale."""
    no_decay = [p for n, p in named.items() if n.startswith("img_tokens.") or n.endswith("logit_scale")]
    decay = [p for n, p in named.items() if not (n.startswith("img_tokens.") or n.endswith("logit_scale"))]
    groups = [g for g in ({"params": decay, "weight_decay": train_cfg.weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    return torch.optim.AdamW(groups, lr=train_cfg.lr, betas=tuple(train_cfg.betas), weight_decay=train_cfg.weight_decay)


def fingerprint(profile, stage: str, frozen_names: dict, previous: str | None = None) -> str:
    """What a finished stage depends on: the recipe (with the stage's losses and trained parts), the data, the
    frozen parts and the previous stage."""
    data = world_identity(profile) if profile.uses_world else dataclasses.asdict(profile.data)
    if profile.uses_world and {"img", "gen", "ret"} & set(STAGE_LOSSES[stage]):
        from ..world.captions import RESTYLE_P, STYLE_TEMPLATES

        data = {**data, "img_texts_restyled": [RESTYLE_P, *STYLE_TEMPLATES]}  # what the [IMG] side reads
    train = dataclasses.asdict(profile.train)
    # only what changes this stage's result: its own step count, not the others' (nor which stage is final)
    for key in ("stage_steps", "stage_decay_every", "final_stage", "checkpoint_every", "joint_from"):
        train.pop(key)
    if train["caption_pairs"] or "caption" not in STAGE_LOSSES[stage]:
        train.pop("caption_pairs")  # the default, or a stage without the captioning loss: fingerprints as before
    if not train["bos_before_images"]:
        train.pop("bos_before_images")  # the default (published): fingerprints as before
    train["steps"] = steps_for(profile.train, stage)
    train["decay_every"] = decay_every_for(profile.train, stage)
    blob = {"stage": stage, "train": train, "data": data, "frozen": frozen_names, "previous": previous,
            "losses": list(STAGE_LOSSES[stage]), "parts": list(STAGE_PARTS[stage])}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _accelerator(mixed_precision: str):
    """One Accelerator per process; a new mixed-precision setting (e.g. a bench switching runs) resets its state."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import InitProcessGroupKwargs

    cpu = not torch.cuda.is_available()
    # rank 0 builds the feature caches while the others wait at a barrier: far past the default 30 minutes on CC3M
    kwargs = dict(mixed_precision=mixed_precision, cpu=cpu,
                  kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(hours=PROCESS_GROUP_TIMEOUT_HOURS))])
    try:
        return Accelerator(**kwargs)
    except ValueError:
        AcceleratorState._reset_state(reset_partial_state=False)
        return Accelerator(**kwargs)


@contextmanager
def deterministic_kernels():
    """torch's deterministic kernels while a stage trains, the caller's setting restored after; warn-only where an
    op has none (some CUDA ones). With 2 CPU threads, stage 02 run twice on the same checkpoint and caches gave
    losses that parted at step ~50 and weights up to 0.13 apart after 200 steps (1 thread, or these kernels:
    identical), so two published runs of one seed differed."""
    before, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


def _peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train(model: GillModel, stage: str, frozen_parts, profile, out_dir, *, steps: int | None = None,
          use_cache: bool = True, stop_after: int | None = None, dataset=None, fingerprint_: str = "",
          progress: bool = True, checkpoint_every: int | None = None) -> dict:
    """Train ``stage``'s parts of ``model`` in place; checkpoints and ``log.jsonl`` go under ``out_dir``.

    Resumes from the newest checkpoint in ``out_dir/checkpoints`` made with the same ``fingerprint_``.
    ``stop_after`` ends the run early after that many steps in total (to test resuming). ``use_cache=False``
    runs the frozen encoders (and the LM) on every batch instead of reading the feature caches (for the
    throughput bench); with it, stages that only read fixed [IMG] states (`states_cacheable`) and see every
    caption at least once also cache those states (`gill_lite.train.caches.img_states`).
    Returns a summary (steps, seconds, steps/s, peak memory, last losses).
    """
    from tqdm.auto import tqdm

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {STAGES}")
    cfg = profile.train
    steps = steps_for(cfg, stage) if steps is None else steps
    every = checkpoint_every or cfg.checkpoint_every
    out_dir = Path(out_dir)
    acc = _accelerator(cfg.mixed_precision)
    model.to(acc.device)
    if hasattr(frozen_parts, "to"):  # one owner of placement: the encoders run where the model does
        from ..backbones.frozen import check_frozen_devices

        frozen_parts.to(acc.device)
        check_frozen_devices(frozen_parts, model)
    dataset = dataset or training_set(profile)
    wanted = set(STAGE_LOSSES[stage])
    need_images, need_targets = bool(wanted & {"caption", "ret"}), "gen" in wanted
    cache_dir = profile.run_dir / "cache"
    t_cache = time.time()
    shared = dict(is_main=acc.is_main_process, wait=acc.wait_for_everyone)
    images = image_features(dataset, frozen_parts.image_encoder, cache_dir, **shared) if use_cache and need_images else None
    targets = text_targets(dataset, frozen_parts.generator, cache_dir, **shared) if use_cache and need_targets else None
    states = None
    if use_cache and states_cacheable(stage, cfg) and steps * cfg.batch_size >= len(dataset):
        # worth it only when the stage sees every caption at least once: 1 + pair_matchings LM passes over the
        # set replace one LM pass per step
        model.eval()
        states = img_states(dataset, model, cache_dir, cfg.max_text_len, cfg.pair_matchings, cfg.seed, **shared)
    cache_seconds = time.time() - t_cache

    torch.manual_seed(cfg.seed)
    named = trainable_parameters(model, stage)
    params = list(named.values())
    opt = make_optimizer(named, cfg)
    start = 0
    ckpt_dir = out_dir / "checkpoints"
    done = [p for p in list_checkpoints(ckpt_dir) if read_state(p).get("fingerprint") == fingerprint_]
    if done:
        start = load_checkpoint(done[-1], model, opt, named)
        print(f"Resuming {stage} from {done[-1]} (step {start})")
    log_path = out_dir / LOG_FILE
    if acc.is_main_process:  # a resumed run keeps the log lines of the steps it does not redo
        kept = [r for r in read_log(log_path) if r["step"] < start]
        out_dir.mkdir(parents=True, exist_ok=True)
        log_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    rank, world = acc.process_index, acc.num_processes
    model.train()
    last, t0, cpu0, timed_from = {}, time.time(), time.process_time(), start
    end = steps if stop_after is None else min(steps, stop_after)
    bar = tqdm(range(start, end), desc=f"GILL {stage}", disable=not (progress and acc.is_main_process),
               mininterval=5, initial=start, total=steps)
    with open(log_path if acc.is_main_process else os.devnull, "a") as log, deterministic_kernels():
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = cfg.lr * lr_factor(step, cfg, stage)
            plan = plan_batch(len(dataset), cfg.batch_size, step, cfg.seed, cfg.concat_fraction, cfg.pair_matchings,
                              rank, world)
            idx = plan.rows
            batch = {"captions": [dataset.captions[i] for i in idx], "img_texts": [dataset.img_texts[i] for i in idx],
                     "groups": plan.groups}
            if need_images:
                batch["image_features"] = (images[idx] if images is not None else
                                           frozen_parts.image_encoder.encode(dataset.load_images(idx)).float())
            if need_targets:
                batch["text_targets"] = (targets[idx] if targets is not None else
                                         frozen_parts.generator.encode_text(batch["captions"]).float())
            if states is not None:  # (B, 1 + matchings, n_img, d): alone, then second of a pair in matching k
                batch["img_states"] = states[idx][torch.arange(len(idx)), torch.tensor(plan.roles) - ALONE]
            with acc.autocast():
                losses = compute_losses(model, batch, stage, cfg)
            loss = sum(losses.values())
            loss.backward()
            if world > 1:
                for p in params:
                    if p.grad is not None:
                        p.grad = acc.reduce(p.grad, reduction="mean")
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if model.img_tokens.rows.requires_grad:
                model.img_tokens.rescale_()
            last = {k: round(v.item(), 6) for k, v in losses.items()}
            record = {"step": step, "loss": round(loss.item(), 6), **last, "lr": opt.param_groups[0]["lr"],
                      "grad_norm": round(grad_norm.item(), 4)}
            if acc.is_main_process:
                log.write(json.dumps(record) + "\n")
                log.flush()
            if step % 10 == 0:
                bar.set_postfix(loss=f"{record['loss']:.3f}")
            if (step + 1) % every == 0 and step + 1 < steps and acc.is_main_process:
                save_checkpoint(ckpt_dir, model, opt, named, step + 1, {"fingerprint": fingerprint_, "stage": stage})
    bar.close()
    seconds, cpu_seconds = time.time() - t0, time.process_time() - cpu0
    n = end - timed_from
    # steps per CPU-second as well: on a shared machine wall-clock rates swing with the neighbours' load
    return {"stage": stage, "steps": end, "finished": end >= steps, "seconds": round(seconds, 2),
            "steps_per_s": round(n / seconds, 3) if seconds > 0 else None,
            "steps_per_cpu_s": round(n / cpu_seconds, 3) if cpu_seconds > 0 else None, "batch_size": cfg.batch_size,
            "peak_memory_mb": round(_peak_memory_mb(acc.device), 1), "last": last, "use_cache": use_cache,
            "cache_seconds": round(cache_seconds, 2), "cached_img_states": states is not None}


def read_log(path) -> list[dict]:
    """The JSONL loss log of a run (``[]`` if absent)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stage_log(profile, stage: str) -> list[dict]:
    """The loss log of ``stage`` for ``profile`` (one dict per step)."""
    return read_log(stage_dir(profile, stage) / LOG_FILE)


def _finished(directory: Path, fp: str) -> bool:
    path = directory / CONFIG_FILE
    if not path.exists():
        return False
    run = json.loads(path.read_text()).get("run", {})
    return run.get("finished") is True and run.get("fingerprint") == fp


def previous_stage(profile, stage: str) -> str | None:
    """The stage whose finished checkpoint ``stage`` starts from: `PREVIOUS`, except that the joint run starts
    from ``profile.train.joint_from`` when set (the staged chain, then every part learns together)."""
    if stage == "joint" and profile.train.joint_from:
        if profile.train.joint_from not in STAGES or profile.train.joint_from == "joint":
            raise ValueError(f"train.joint_from must be one of the staged stages, not {profile.train.joint_from!r}")
        return profile.train.joint_from
    return PREVIOUS[stage]


def stage_fingerprint(profile, stage: str, frozen_names: dict) -> str:
    """The fingerprint of ``stage``, chained through its previous stages."""
    prev = previous_stage(profile, stage)
    prev_fp = stage_fingerprint(profile, prev, frozen_names) if prev else None
    return fingerprint(profile, stage, frozen_names, prev_fp)


def train_stage(profile, stage: str, frozen_parts=None, *, progress: bool = True,
                train_missing: bool = True) -> GillModel:
    """The GILL of ``stage`` for ``profile``: loaded if a finished checkpoint with this configuration exists in
    its folder ``profile.run_dir/"gill"/<stage>/<fingerprint>`` (`stage_dir`), otherwise trained (after the stages
    it starts from) and saved there; other configurations' folders are left as they are.

    ``train_missing=False`` (measuring scripts pointed at another run folder) raises `FileNotFoundError` instead
    of training, and writes nothing."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {STAGES}")
    if frozen_parts is None:
        from ..backbones import load_frozen_parts

        frozen_parts = load_frozen_parts(profile)
    names = {"lm": frozen_parts.lm.config_name, "image_encoder": frozen_parts.image_encoder.config_name,
             "generator": frozen_parts.generator.config_name}
    fp = stage_fingerprint(profile, stage, names)
    out = stage_dir(profile, stage, fp)
    from accelerate import PartialState

    state = PartialState()
    if _finished(out, fp):
        return _load_finished(out, frozen_parts, profile, state)
    if not train_missing:
        others = sorted(p.name for p in out.parent.glob("*") if p.is_dir()) if out.parent.is_dir() else []
        raise FileNotFoundError(
            f"no finished {stage} stage for this configuration in {out} (other configurations there: "
            f"{others or 'none'}); train it first (gill-lite train --profile {profile.name} --stage {stage}), or "
            "let this call train it (train_missing=True, the default; a bench without --no-train)")
    # One process at a time trains a stage in a run folder: another one (a bench beside a notebook) waits, then
    # loads what the first saved, rather than training it again and overwriting it. The ranks of one
    # multi-process run train together, so they do not take this lock.
    with file_lock(out.parent / f"{fp}.lock") if state.num_processes == 1 else nullcontext():
        if _finished(out, fp):
            return _load_finished(out, frozen_parts, profile, state)
        prev = previous_stage(profile, stage)
        model = (train_stage(profile, prev, frozen_parts, progress=progress) if prev
                 else GillModel.build(frozen_parts, profile.train))
        summary = train(model, stage, frozen_parts, profile, out, fingerprint_=fp, progress=progress)
        if state.is_main_process:
            model.save_trainable(out, extra={"run": {**summary, "fingerprint": fp, "profile": profile.name}})
            shutil.rmtree(out / "checkpoints", ignore_errors=True)  # finished: the final weights are all it needs
            _mark_latest(out)
    state.wait_for_everyone()
    print(f"Trained {stage} in {summary['seconds']:.0f}s ({summary['steps']} steps); saved {out}")
    model.eval()
    return model


def _load_finished(out, frozen_parts, profile, state) -> GillModel:
    print(f"Found finished checkpoint, loading {out}")
    if state.is_main_process:
        _mark_latest(out)
    return GillModel.from_trainable(out, frozen_parts, profile.train, untrained_decision=True)


def trains_staged_chain(train_cfg) -> bool:
    """Whether the profile's GILL goes through the staged chain (notebooks 01-04 train one stage each): yes unless
    its final stage is a joint run from scratch (``paper``: the published recipe; there the notebooks load it)."""
    return train_cfg.final_stage != "joint" or train_cfg.joint_from is not None


def notebook_stage(profile, stage: str, frozen_parts=None) -> tuple[GillModel, str]:
    """The GILL a stage notebook shows and the stage whose log it plots: ``stage`` itself on a staged profile,
    else the final (joint) run, so ``reproduce --profile paper`` trains the paper's one joint run, not four
    extra stages."""
    if trains_staged_chain(profile.train):
        return train_stage(profile, stage, frozen_parts), stage
    return load_gill(profile, frozen_parts), final_stage(profile)


def final_stage(profile) -> str:
    """The stage whose checkpoint holds the whole model: ``profile.train.final_stage``."""
    return profile.train.final_stage


def load_gill(profile, frozen_parts=None, stage: str | None = None, train_missing: bool = True) -> GillModel:
    """The full GILL for downstream use (decision, evaluation, dialogue): trains what is missing, unless
    ``train_missing=False``, which raises `FileNotFoundError` instead (see `train_stage`)."""
    return train_stage(profile, stage or final_stage(profile), frozen_parts, train_missing=train_missing)
