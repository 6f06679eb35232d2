"""Scale-out on a real engine: 2 CPU processes (gloo, set up by Accelerate as `accelerate launch` would).

1. The contrastive loss over all-gathered embeddings equals the single-process loss on the same global batch,
   and after the gradient averaging of data parallelism (what `accelerate`/DDP do) the gradients match too,
   also with uneven shards (the last batch).
2. GILL's own training loop (`gill_lite.train.loop.train`, retrieval stage, tiny random frozen parts) run on 2
   processes writes a checkpoint from rank 0 that loads in a single process, and it holds the same weights as
   a single-process run of the same steps.
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch

WORLD = 2
STEPS, CKPT_AT = 3, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _embeddings():
    """A seeded global batch: 8 (text, image) pairs of inputs and two projection layers + a logit scale."""
    g = torch.Generator().manual_seed(0)
    x_text, x_image = torch.randn(8, 12, generator=g), torch.randn(8, 10, generator=g)
    torch.manual_seed(1)
    heads = torch.nn.ModuleDict({"text": torch.nn.Linear(12, 6), "image": torch.nn.Linear(10, 6)})
    log_scale = torch.nn.Parameter(torch.tensor(2.0))
    return x_text, x_image, heads, log_scale


def _contrastive(x_text, x_image, heads, log_scale, gather: bool):
    from torch.nn import functional as F

    from gill_lite.losses import contrastive_loss

    t = F.normalize(heads["text"](x_text), dim=-1)
    i = F.normalize(heads["image"](x_image), dim=-1)
    return contrastive_loss(t, i, log_scale.exp(), gather=gather)


def _grads(heads, log_scale) -> dict:
    out = {n: p.grad.clone() for n, p in heads.named_parameters()}
    out["log_scale"] = log_scale.grad.clone()
    return out


def _setup():
    """A tiny GILL (random OPT, fake encoders) and a profile whose train config matches it."""
    from gill_fixtures import tiny_parts, tiny_train_cfg

    from gill_lite.config import get_profile
    from gill_lite.train.data import CaptionSet
    from gill_lite.world.corpus import make_split, render_images

    examples = make_split("train", 32, 0, 0.15, 32)
    data = CaptionSet("dist-test", [e.id for e in examples], [e.caption for e in examples],
                      lambda idx: render_images([examples[i] for i in idx], 32))
    cfg = tiny_train_cfg(batch_size=8, steps=STEPS, warmup_steps=1, checkpoint_every=CKPT_AT,
                         mixed_precision="no", concat_fraction=0.0)
    profile = replace(get_profile("ci"), train=cfg)
    return tiny_parts(), profile, data


def _run_training(parts, profile, data, out_dir):
    from gill_lite.model import GillModel
    from gill_lite.train.loop import train

    model = GillModel.build(parts, profile.train)
    return train(model, "retrieval", parts, profile, out_dir, steps=STEPS, use_cache=False, dataset=data,
                 progress=False, checkpoint_every=CKPT_AT)


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), ACCELERATE_USE_CPU="true")
    torch.set_num_threads(1)
    import torch.distributed as dist
    from accelerate import PartialState

    from gill_lite.io import atomic_save_file

    state = PartialState(cpu=True)  # initialises the gloo process group from the env, as `accelerate launch` does
    assert state.num_processes == WORLD and dist.get_backend() == "gloo"
    out = Path(out)

    # 1. the loss with all-gathered embeddings, uneven shards (3 + 5 rows of the global batch of 8)
    x_text, x_image, heads, log_scale = _embeddings()
    rows = slice(0, 3) if rank == 0 else slice(3, 8)
    loss = _contrastive(x_text[rows], x_image[rows], heads, log_scale, gather=True)
    loss.backward()
    grads = _grads(heads, log_scale)
    for g in grads.values():  # data parallel: average every parameter's gradient across processes
        dist.all_reduce(g)
        g /= WORLD
    atomic_save_file({"loss": loss.detach().reshape(1), **grads}, out / f"contrastive_rank{rank}.safetensors")

    # 2. GILL's training loop on 2 processes; rank 0 writes the checkpoints
    parts, profile, data = _setup()
    summary = _run_training(parts, profile, data, out / "multi")
    (out / f"summary_rank{rank}.json").write_text(json.dumps(summary))
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, monkeypatch):
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    monkeypatch.setenv("GILL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)

    # 1. single process, the whole batch, no gather: same loss, same (averaged) gradients
    x_text, x_image, heads, log_scale = _embeddings()
    loss = _contrastive(x_text, x_image, heads, log_scale, gather=False)
    loss.backward()
    expected = _grads(heads, log_scale)
    for rank in range(WORLD):
        got = load_file(str(tmp_path / f"contrastive_rank{rank}.safetensors"))
        torch.testing.assert_close(got["loss"][0], loss.detach(), rtol=1e-6, atol=1e-6)
        for name, grad in expected.items():
            torch.testing.assert_close(got[name], grad, rtol=1e-5, atol=1e-6, msg=f"gradient of {name}")

    # 2. the multi-process checkpoint loads in one process and equals a single-process run of the same steps
    from gill_lite.model import GillModel
    from gill_lite.train.checkpoints import list_checkpoints, load_checkpoint
    from gill_lite.train.loop import make_optimizer, trainable_parameters

    summaries = [json.loads((tmp_path / f"summary_rank{r}.json").read_text()) for r in range(WORLD)]
    assert summaries[0]["last"] == summaries[1]["last"]  # every process computed the same full-batch loss
    multi = list_checkpoints(tmp_path / "multi" / "checkpoints")
    assert [p.name for p in multi] == [f"step-{CKPT_AT:06d}"]

    parts, profile, data = _setup()
    single_summary = _run_training(parts, profile, data, tmp_path / "single")
    assert single_summary["last"]["ret"] == pytest.approx(summaries[0]["last"]["ret"], rel=1e-4, abs=1e-5)
    single = list_checkpoints(tmp_path / "single" / "checkpoints")[-1]
    multi_state = load_file(str(multi[0] / "trainable.safetensors"))
    single_state = load_file(str(single / "trainable.safetensors"))
    assert multi_state.keys() == single_state.keys()
    for name in multi_state:
        torch.testing.assert_close(multi_state[name], single_state[name], rtol=1e-4, atol=1e-5, msg=name)

    model = GillModel.build(parts, profile.train)
    named = trainable_parameters(model, "retrieval")
    step = load_checkpoint(multi[0], model, make_optimizer(named, profile.train), named)
    assert step == CKPT_AT
    for name, value in model.retrieval.state_dict().items():
        torch.testing.assert_close(value, multi_state[f"retrieval.{name}"], msg=name)
    assert GillModel.from_trainable(multi[0], parts).retrieval.logit_scale.item() == pytest.approx(
        multi_state["retrieval.logit_scale"].item())
