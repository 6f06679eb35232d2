"""Paper-scale cost without the weights: GILL's joint training step on paper-shaped random models.

    python bench/paper_shapes.py               # GPU: full depth, bf16, batch 100 (the paper's per-GPU batch)
                                               # CPU: reduced depth (2 LM layers, 2 ViT layers), batch 4, bf16
    python bench/paper_shapes.py --steps 5 --batch 50 --lm-layers 8

Builds, with random weights and no download, OPT-6.7B (hidden 4096, 32 layers, 32 heads, ffn 16384, vocab
50272) and the CLIP ViT-L/14 vision tower (width 1024, 24 layers, patch 14, 224 px) from the configs in
`gill_lite.scaling`, wraps them in the gill engineer's `GillModel` (visual prefix, [IMG] rows, GillMapper
77 x 768, retrieval heads) and times joint steps (`gill_lite.train.steps.compute_losses`, the four losses
summed, one backward, AdamW) after one warm-up step. The vision tower runs in every step (no feature cache, as
in the published code). Stable Diffusion is NOT in the step: its UNet is frozen and unused in training, and its
CLIP text encoder's outputs (the generation targets, 77 x 768) are precomputed once, so the step reads cached
targets (random here); both are counted from their configs only. Prints ``name: value`` lines and writes
``runs/bench/paper_shapes.json``. Model FLOPs utilisation (MFU) = model FLOPs per step / step time / peak; the
frozen LM needs only input gradients in the backward pass (about 1x its forward, not 2x), and that is counted.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from gill_lite.scaling import (  # noqa: E402
    OPT_6_7B,
    SD_TEXT_ENCODER,
    SD_UNET_PARAMETERS,
    VIT_L_14,
    clip_text_parameters,
    estimate_paper_memory,
)

PAPER_BATCH_PER_GPU = 100
GPU_PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "A6000": 154.8, "L40": 181.0, "4090": 165.2}


class RandomVision:
    """The ViT-L/14 vision tower (random weights) behind the `ImageEncoder` interface GILL uses."""

    def __init__(self, config: dict, device, dtype):
        from transformers import CLIPVisionConfig, CLIPVisionModel

        self.model = _on_meta_then(device, lambda: CLIPVisionModel(CLIPVisionConfig(**config))).to(dtype).eval()
        # to_empty leaves buffers uninitialised: the position ids are the one buffer this tower has
        for name, buf in self.model.named_buffers():
            if name.endswith("position_ids"):
                buf.copy_(torch.arange(buf.shape[-1], device=device).expand_as(buf))
        self.hidden_size, self.config_name, self.dtype = config["hidden_size"], "random-vit-l-14-shaped", dtype
        self.image_size, self.device = config["image_size"], device

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pooled, post-layernorm CLS vector (N, 1024): what GILL's prefix and retrieval head read."""
        return self.model(pixel_values=pixels.to(self.dtype)).pooler_output.float()


def _fast_random_(model: torch.nn.Module, seed: int = 0) -> None:
    """Random weights, quickly: normal_ on 600M CPU floats takes ~10 s, so CPU tensors tile one random block.

    The values only need to be finite and of a realistic scale (std 0.02; layer norms at 1 and 0) for timing.
    """
    g = torch.Generator().manual_seed(seed)
    block = torch.randn(1 << 20, generator=g) * 0.02
    norms = {id(p): n for m in model.modules() if isinstance(m, torch.nn.LayerNorm)
             for n, p in m.named_parameters(recurse=False)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if id(p) in norms:
                p.fill_(1.0 if norms[id(p)] == "weight" else 0.0)
            elif p.device.type == "cuda":
                p.normal_(0, 0.02)
            else:
                flat = p.view(-1)
                for start in range(0, flat.numel(), block.numel()):
                    n = min(block.numel(), flat.numel() - start)
                    flat[start:start + n].copy_(block[:n])


def _on_meta_then(device, build_fn):
    """Build a transformers model without its (slow, CPU) initialisation, then give it random weights."""
    with torch.device("meta"):
        model = build_fn()
    model = model.to_empty(device=device)
    _fast_random_(model)
    return model


def build(lm_layers: int, vit_layers: int, device, dtype):
    """Paper-shaped frozen parts (random) and a GillModel with the paper's trainable parts."""
    from transformers import OPTConfig, OPTForCausalLM

    from gill_lite.backbones.tokenizer import build_word_tokenizer, world_words
    from gill_lite.config import get_profile
    from gill_lite.model import GillModel

    torch.manual_seed(0)
    tokenizer = build_word_tokenizer(world_words())
    config = OPTConfig(**{**OPT_6_7B, "num_hidden_layers": lm_layers}, dropout=0.0,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    lm = _on_meta_then(device, lambda: OPTForCausalLM(config))
    lm.tie_weights()  # to_empty keeps the tie, but say so: lm_head is the input embedding matrix
    lm = lm.to(dtype).eval()
    vision = RandomVision({**VIT_L_14, "num_hidden_layers": vit_layers}, device, dtype)
    parts = SimpleNamespace(
        lm=SimpleNamespace(model=lm, tokenizer=tokenizer, hidden_size=OPT_6_7B["hidden_size"],
                           config_name="random-opt-6.7b-shaped"),
        image_encoder=vision,
        generator=SimpleNamespace(max_length=SD_TEXT_ENCODER["max_position_embeddings"],
                                  text_width=SD_TEXT_ENCODER["hidden_size"], config_name="sd-v1-5-shaped"),
    )
    train_cfg = get_profile("paper").train  # mapper 512 / 4 heads / 4+4 layers / ffn 2048, retrieval 256
    model = GillModel.build(parts, train_cfg).to(device)
    return model, parts, train_cfg


def captions(n: int, words: int, seed: int) -> list[str]:
    """World captions of about ``words`` words (the paper's max text length is 32 tokens)."""
    import numpy as np

    from gill_lite.world.corpus import make_split

    rng = np.random.default_rng(seed)
    pool = [e.caption.rstrip(".") for e in make_split("train", 64, 0)]
    out = []
    for _ in range(n):
        text = ""
        while len(text.split()) < words:
            text += pool[rng.integers(len(pool))] + " . "
        out.append(" ".join(text.split()[:words]))
    return out


def model_flops_per_step(batch: int, lm_layers: int, vit_layers: int, seq_caption: int, seq_img: int,
                         trainable: int) -> float:
    """Forward + backward FLOPs of one joint step (the LM and ViT frozen: no weight gradients for them)."""
    h, f, v = OPT_6_7B["hidden_size"], OPT_6_7B["ffn_dim"], OPT_6_7B["vocab_size"]
    layer = 4 * h * h + 2 * h * f  # matmul weights per LM layer
    flops = 0.0
    for s in (seq_caption, seq_img):
        per_token = 2 * lm_layers * (layer + 2 * s * h) + 2 * h * v  # layers + attention scores + logits
        flops += 2 * per_token * batch * s  # forward + input-gradient backward (about the same again)
    w, fv = VIT_L_14["hidden_size"], VIT_L_14["intermediate_size"]
    tokens = (VIT_L_14["image_size"] // VIT_L_14["patch_size"]) ** 2 + 1
    flops += 2 * batch * tokens * vit_layers * (4 * w * w + 2 * w * fv + 2 * tokens * w)  # forward only, no grad
    flops += 6 * batch * trainable * 10  # trainable parts: ~6 FLOPs per weight per token, ~10 tokens on average
    return flops


def peak_tflops(device, bf16: bool) -> tuple[float, str]:
    """The device's peak (bf16 dense on GPUs; on CPUs 2.5 GHz assumed, x2 for bf16 with AVX512-BF16): approximate."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in GPU_PEAK_BF16_TFLOPS.items():
            if key in name:
                return value, f"{name} bf16 dense"
        return float("nan"), f"{name}: peak unknown (pass --peak-tflops)"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    per_cycle = 32 if "avx512f" in flags else 16 if "fma" in flags else 4
    kind = "fp32"
    if bf16 and "avx512_bf16" in flags:
        per_cycle, kind = 2 * per_cycle, "bf16"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores * 2.5e9 * per_cycle / 1e12, f"{cores} CPU cores x 2.5 GHz x {per_cycle} {kind} FLOP/cycle (assumed)"


def peak_memory_gib(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB -> GiB (process peak RSS)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5 on GPU, 2 on CPU)")
    parser.add_argument("--batch", type=int, default=None, help="per-device batch (default 100 on GPU, 4 on CPU)")
    parser.add_argument("--lm-layers", type=int, default=None, help="default 32 on GPU, 2 on CPU")
    parser.add_argument("--vit-layers", type=int, default=None, help="default 24 on GPU, 2 on CPU")
    parser.add_argument("--fp32", action="store_true", help="float32 instead of bf16 (bf16 is the paper's, and on "
                        "CPUs with AVX512-BF16 about 2x faster for these widths)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for MFU")
    parser.add_argument("--out", default=None, help="default: runs/bench/paper_shapes.json (under GILL_RUNS_DIR if set)")
    args = parser.parse_args(argv)

    from gill_lite.config import runs_root
    from gill_lite.io import atomic_write_json
    from gill_lite.train.loop import make_optimizer, trainable_parameters
    from gill_lite.train.steps import compute_losses

    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    dtype = torch.float32 if args.fp32 else torch.bfloat16
    bf16 = dtype == torch.bfloat16
    if not gpu:
        torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    lm_layers = args.lm_layers or (OPT_6_7B["num_hidden_layers"] if gpu else 2)
    vit_layers = args.vit_layers or (VIT_L_14["num_hidden_layers"] if gpu else 2)
    batch = args.batch or (PAPER_BATCH_PER_GPU if gpu else 4)
    steps = args.steps or (5 if gpu else 1)
    reduced = int(lm_layers < OPT_6_7B["num_hidden_layers"] or vit_layers < VIT_L_14["num_hidden_layers"])

    t0 = time.perf_counter()
    model, parts, cfg = build(lm_layers, vit_layers, device, dtype)
    build_s = time.perf_counter() - t0
    cfg = replace(cfg, concat_fraction=0.0)  # fixed 32-token captions: every step the same shape
    named = trainable_parameters(model, "joint")
    params = list(named.values())
    opt = make_optimizer(named, cfg)
    trainable = sum(p.numel() for p in params)
    n_words = cfg.max_text_len - 2  # BOS + about 30 word tokens fill the 32-token budget

    def batch_at(step: int) -> dict:
        g = torch.Generator().manual_seed(step)
        pixels = torch.randn(batch, 3, VIT_L_14["image_size"], VIT_L_14["image_size"], generator=g)
        targets = torch.randn(batch, parts.generator.max_length, parts.generator.text_width, generator=g)
        return {"captions": captions(batch, n_words, step), "pixels": pixels.to(device), "text_targets": targets}

    def step_once(step: int) -> dict:
        b = batch_at(step)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            b["image_features"] = parts.image_encoder.encode(b.pop("pixels"))
            losses = compute_losses(model, b, "joint", cfg)
            loss = sum(losses.values())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        model.img_tokens.rescale_()
        return {k: float(v.detach()) for k, v in losses.items()}

    model.train()
    step_once(0)  # warm-up: allocator, kernels, lazy initialisation
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, last = [], {}
    for step in range(1, steps + 1):
        start = time.perf_counter()
        last = step_once(step)
        if gpu:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    step_s = sorted(times)[len(times) // 2]  # median
    seq_caption, seq_img = cfg.n_visual_tokens + cfg.max_text_len, cfg.max_text_len + cfg.n_img_tokens
    flops = model_flops_per_step(batch, lm_layers, vit_layers, seq_caption, seq_img, trainable)
    peak, peak_note = (args.peak_tflops, "given") if args.peak_tflops else peak_tflops(device, bf16)
    estimate = estimate_paper_memory(batch_per_gpu=PAPER_BATCH_PER_GPU, verbose=False)
    lm_params = sum(p.numel() for p in model.lm.parameters())
    result = {
        "device": torch.cuda.get_device_name(device) if gpu else f"cpu ({platform.processor() or platform.machine()})",
        "dtype": str(dtype).replace("torch.", ""),
        "reduced_depth": reduced,
        "lm_layers": lm_layers,
        "vit_layers": vit_layers,
        "batch": batch,
        "steps_timed": steps,
        "build_s": round(build_s, 2),
        "step_s": round(step_s, 4),
        "throughput_examples_per_s": round(batch / step_s, 3),
        "tokens_per_s": round(batch * (seq_caption + seq_img) / step_s, 1),
        "peak_memory_gib": round(peak_memory_gib(device), 3),
        "peak_memory_kind": "torch.cuda.max_memory_allocated" if gpu else "process peak RSS",
        "model_tflops_per_step": round(flops / 1e12, 4),
        "achieved_tflops": round(flops / step_s / 1e12, 4),
        "peak_tflops": peak,
        "peak_note": peak_note,
        "mfu": round(flops / step_s / 1e12 / peak, 4) if peak == peak else None,
        "lm_parameters_built": lm_params,
        "vision_parameters_built": sum(p.numel() for p in parts.image_encoder.model.parameters()),
        "trainable_parameters": trainable,
        "sd_text_encoder_parameters_not_in_step": clip_text_parameters(),
        "sd_unet_parameters_not_in_step": SD_UNET_PARAMETERS,
        "losses_last_step": {k: round(v, 4) for k, v in last.items()},
        "paper_memory_estimate_gib": estimate["total_gib"],
        "note": ("UNet frozen and unused in training; SD text-encoder targets cached (random here); "
                 + ("REDUCED DEPTH on CPU: not the paper's cost, a shape check and a scale model"
                    if reduced else "full paper depth")),
    }
    for key, value in result.items():
        print(f"{key}: {value}")
    atomic_write_json(args.out or runs_root() / "bench" / "paper_shapes.json", result)
    return result


if __name__ == "__main__":
    main()
