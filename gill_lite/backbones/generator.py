"""The frozen image generator: a diffusers `StableDiffusionPipeline`, driven through ``prompt_embeds``.

``paper``: Stable Diffusion v1.5 in fp16 (``StableDiffusionPipeline.from_pretrained(hub_id, torch_dtype=float16)``).
Stand-in: the same pipeline class, saved with ``save_pretrained`` and loaded from a local folder:
  * text encoder: the text tower (transformers ``CLIPTextModel``, word-level tokenizer, max length 16) of a tiny
    ``CLIPModel`` pretrained contrastively on the world, then frozen, as SD freezes OpenAI's CLIP text encoder.
    A text encoder trained jointly with the denoiser collapses the position words (cpu_feasibility.md);
  * UNet: a stock ``UNet2DConditionModel`` (channels (32, 64, 64), cross-attention at 16 and 8 px) trained
    with v-prediction, a cosine noise schedule, EMA and 10% empty captions, **in pixel space**: the "VAE" is a
    one-block ``AutoencoderKL`` whose only role is to make ``vae_scale_factor == 1`` (32 px latents = 32 px
    images, 3 channels in [-1, 1]); it is never run, because the stand-in is sampled with
    ``output_type="latent"`` and the latents *are* the image. A real SD pipeline (``vae_scale_factor == 8``)
    is decoded by its VAE as usual;
  * scheduler: DDIM, 20 steps, guidance 1 (the unconditional branch of a tiny model is too weak for more).

GILL's generation target is ``encode_text(captions)``: the text encoder's last hidden state for the caption
padded to ``max_length`` (77 x 768 at paper scale, 16 x 128 at tiny), computed exactly as the pipeline's own
``encode_prompt`` computes it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cards import config_name_for, weights_digest, write_model_card
from .tokenizer import build_word_tokenizer, world_words


@dataclass
class ImageGenerator:
    """A StableDiffusionPipeline plus the profile's sampling defaults."""

    pipeline: object
    config_name: str
    num_inference_steps: int = 20
    guidance_scale: float = 1.0

    @property
    def max_length(self) -> int:
        return int(self.pipeline.tokenizer.model_max_length)

    @property
    def text_width(self) -> int:
        return int(self.pipeline.text_encoder.config.hidden_size)

    @property
    def pixel_space(self) -> bool:
        """True for the stand-ins: the UNet denoises 3-channel images directly (see module docstring)."""
        return self.pipeline.vae_scale_factor == 1

    @property
    def device(self):
        return self.pipeline.unet.device

    def encode_text(self, captions: list[str], batch_size: int = 256):
        """Text-encoder last hidden states of ``captions``, float (N, max_length, text_width): GILL's target."""
        import torch

        if isinstance(captions, str):
            raise TypeError("encode_text takes a list of strings")
        out = []
        with torch.no_grad():
            for i in range(0, len(captions), batch_size):
                embeds, _ = self.pipeline.encode_prompt(list(captions[i:i + batch_size]), self.device, 1, False)
                out.append(embeds.float())
        return torch.cat(out) if out else torch.zeros(0, self.max_length, self.text_width)

    def _run(self, seed: int, n: int, steps, guidance, batch_size: int, **inputs) -> np.ndarray:
        import torch

        steps = steps or self.num_inference_steps
        guidance = self.guidance_scale if guidance is None else guidance
        images = []
        for i in range(0, n, batch_size):
            sl = slice(i, min(i + batch_size, n))
            # one generator per image: image k depends on (seed, k) only, not on the batch it falls in
            gens = [torch.Generator("cpu").manual_seed(seed + k) for k in range(sl.start, sl.stop)]
            kwargs = {k: (v[sl] if v is not None and not isinstance(v, str) else v) for k, v in inputs.items()}
            with torch.no_grad():
                out = self.pipeline(
                    **kwargs, num_inference_steps=steps, guidance_scale=guidance, generator=gens,
                    output_type="latent" if self.pixel_space else "np", return_dict=True,
                ).images
            if self.pixel_space:
                images.append(((out.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy())
            else:
                images.append((np.asarray(out) * 255).round().clip(0, 255).astype(np.uint8))
        return np.concatenate(images)

    def generate(self, prompt_embeds, seed: int = 0, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, batch_size: int = 64) -> np.ndarray:
        """Images from text-encoder-space embeddings (N, max_length, text_width) -> uint8 (N, H, W, 3).

        With guidance > 1 the negative embedding is the encoding of the empty prompt, as in SD.
        """
        if prompt_embeds.ndim != 3 or tuple(prompt_embeds.shape[1:]) != (self.max_length, self.text_width):
            raise ValueError(f"prompt_embeds must be (N, {self.max_length}, {self.text_width}), got {tuple(prompt_embeds.shape)}")
        dtype = self.pipeline.text_encoder.dtype
        prompt_embeds = prompt_embeds.to(self.device, dtype)
        guidance = self.guidance_scale if guidance_scale is None else guidance_scale
        negative = None
        if guidance > 1:
            negative = self.encode_text([""]).to(self.device, dtype).expand(len(prompt_embeds), -1, -1)
        return self._run(seed, len(prompt_embeds), num_inference_steps, guidance, batch_size,
                         prompt_embeds=prompt_embeds, negative_prompt_embeds=negative)

    def generate_from_text(self, captions: list[str], seed: int = 0, num_inference_steps: int | None = None,
                           guidance_scale: float | None = None, batch_size: int = 64) -> np.ndarray:
        """The text-to-image baseline: the pipeline reads the captions (truncated as its tokenizer truncates)."""
        if isinstance(captions, str):
            raise TypeError("generate_from_text takes a list of strings")
        return self._run(seed, len(captions), num_inference_steps, guidance_scale, batch_size, prompt=list(captions))


def load_generator(profile, device: str | None = None) -> ImageGenerator:
    """Load ``profile.generator.name_or_path`` (hub id or local folder) as a frozen StableDiffusionPipeline."""
    import torch
    from diffusers import StableDiffusionPipeline

    cfg = profile.generator
    source = profile.resolve(cfg.name_or_path)
    local = Path(source).is_dir()
    if not local and source.startswith(("/", "./", "models/")):
        raise FileNotFoundError(
            f"generator folder {source} does not exist; build the stand-ins with "
            f"`gill_lite.backbones.ensure_standins(profile)` (profile {profile.name!r})"
        )
    pipe = StableDiffusionPipeline.from_pretrained(
        source, dtype=getattr(torch, cfg.dtype), safety_checker=None, requires_safety_checker=False,
        **({"local_files_only": True} if local else {}),
    )
    for part in (pipe.unet, pipe.vae, pipe.text_encoder):
        part.requires_grad_(False).eval()
    # channels-last convolutions, the diffusers advice: 0-9% more images/s on 2 CPU cores at tiny (noisy), the
    # same images up to rounding; more on GPUs
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    pipe.set_progress_bar_config(disable=True)
    if device:
        pipe.to(device)
    cfg_all = {"unet": dict(pipe.unet.config), "text_encoder": pipe.text_encoder.config.to_dict(),
               "scheduler": dict(pipe.scheduler.config)}
    # GILL depends on the text encoder only (its outputs are the mapper's targets): a retrained UNet keeps the name
    weights = weights_digest(source, ("text_encoder",)) if local else None
    return ImageGenerator(pipe, config_name_for(source, cfg_all, weights), cfg.num_inference_steps, cfg.guidance_scale)


# ---------------------------------------------------------------- stand-in construction and training


def tiny_clip_model(cfg, vocab_size: int, image_size: int):
    """The transformers `CLIPModel` (of a `GeneratorRecipe`) whose text tower becomes the stand-in's text encoder."""
    from transformers import CLIPConfig, CLIPModel

    text = dict(vocab_size=vocab_size, hidden_size=cfg.text_width, intermediate_size=4 * cfg.text_width,
                num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads,
                max_position_embeddings=cfg.max_length, pad_token_id=0, bos_token_id=1, eos_token_id=1)
    vision = dict(image_size=image_size, patch_size=8, hidden_size=cfg.text_width, intermediate_size=4 * cfg.text_width,
                  num_hidden_layers=cfg.vision_layers, num_attention_heads=cfg.text_heads)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=cfg.text_width))


def tiny_unet(cfg, image_size: int):
    """A stock `UNet2DConditionModel` in pixel space, from a `GeneratorRecipe`; cross-attention at the coarse levels
    only (CPU cost)."""
    from diffusers import UNet2DConditionModel

    ch = tuple(cfg.unet_channels)
    attn = tuple(cfg.unet_cross_attention)
    if len(attn) != len(ch):
        raise ValueError(f"unet_cross_attention {attn} needs one flag per level of unet_channels {ch}")
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn))
    return UNet2DConditionModel(
        sample_size=image_size, in_channels=3, out_channels=3, block_out_channels=ch, down_block_types=down,
        up_block_types=up, layers_per_block=cfg.unet_layers_per_block, cross_attention_dim=cfg.text_width,
        attention_head_dim=cfg.attention_head_dim, norm_num_groups=8, addition_embed_type="text",
    )


def pixel_vae():
    """A one-block AutoencoderKL: ``vae_scale_factor == 1`` so the pipeline's latents are 32 px images."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
                         up_block_types=("UpDecoderBlock2D",), block_out_channels=(8,), layers_per_block=1,
                         latent_channels=3, norm_num_groups=8)


def schedulers():
    """(training DDPM, sampling DDIM) with the same cosine betas and v-prediction."""
    from diffusers import DDIMScheduler, DDPMScheduler

    common = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                  clip_sample=False)
    return DDPMScheduler(**common), DDIMScheduler(**common, set_alpha_to_one=False, steps_offset=1,
                                                   timestep_spacing="trailing")


def build_pipeline(unet, text_encoder, tokenizer, scheduler, vae=None):
    """The diffusers pipeline around the parts; ``vae`` (default: a new `pixel_vae`, which pixel-space sampling
    never runs) is kept from the previous folder when a run resumes, so its file stays the same."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=pixel_vae() if vae is None else vae, text_encoder=text_encoder,
                                   tokenizer=tokenizer, unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _cosine(step: int, total: int, warmup: int) -> float:
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def pretrain_text_encoder(cfg, image_size: int, grid, log=print):
    """Contrastive pretraining of the tiny CLIPModel on the world grid; returns (clip, tokenizer, figures)."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 11])
    tokenizer = build_word_tokenizer(world_words(), template="eos", model_max_length=cfg.max_length)
    clip = tiny_clip_model(cfg, len(tokenizer), image_size)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)

    def pixels(images):
        return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std

    opt = torch.optim.AdamW(clip.parameters(), lr=cfg.text_lr, weight_decay=0.1)
    steps = cfg.text_pretrain_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, steps, max(1, steps // 20)))
    clip.train()
    t0 = time.time()
    for step in (bar := tqdm(range(steps), desc="pretrain generator text encoder", mininterval=10)):
        images, captions, _ = grid.batch(rng, cfg.text_batch_size)
        ids = tokenizer(captions, padding="max_length", max_length=cfg.max_length, truncation=True, return_tensors="pt").input_ids
        out = clip(input_ids=ids, pixel_values=pixels(images), return_loss=True)
        out.loss.backward()
        opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{out.loss.item():.3f}")
    clip.eval()
    # recall@1 on a fresh batch of every combination (text -> image)
    with torch.no_grad():
        images, captions, _ = grid.batch(np.random.default_rng([cfg.seed, 12]), len(grid.shapes))
        ids = tokenizer(captions, padding="max_length", max_length=cfg.max_length, truncation=True, return_tensors="pt").input_ids
        # transformers 5 returns output objects here (projected features in .pooler_output); 4.x returned tensors
        txt = F.normalize(_features(clip.get_text_features(input_ids=ids)), dim=-1)
        img = F.normalize(_features(clip.get_image_features(pixel_values=pixels(images))), dim=-1)
        recall = float(((txt @ img.T).argmax(1) == torch.arange(len(txt))).float().mean())
    secs = time.time() - t0
    log(f"generator text encoder: recall@1 over all {len(txt)} combinations {recall:.3f} in {secs:.0f}s")
    return clip, tokenizer, {"text_encoder_recall_at_1_all_combinations": round(recall, 4), "text_encoder_train_seconds": round(secs, 1)}


def _features(out):
    return getattr(out, "pooler_output", out)


def generator_eval_sets(world_cfg, n: int) -> dict:
    """Held-out captions for the generator: test split (seen combinations), held-out combinations."""
    from gill_lite.world.corpus import make_split

    return {split: make_split(split, n, world_cfg.seed, world_cfg.heldout_fraction, world_cfg.image_size)
            for split in ("test", "heldout")}


def generator_accuracy(generator: ImageGenerator, examples, seed: int = 0) -> dict:
    """Probe accuracy (kind, colour, size, position, all) of images generated from the examples' captions."""
    from gill_lite.world.probe import attribute_accuracy

    images = generator.generate(generator.encode_text([e.caption for e in examples]), seed=seed)
    return {k: round(v, 4) for k, v in attribute_accuracy(images, [e.shape for e in examples]).items()}


def pretrain_generator(profile, recipe, out_dir, log=print, resume_from=None) -> dict:
    """Build the stand-in pipeline of ``recipe`` (a `GeneratorRecipe`): pretrain + freeze the text encoder, train
    the pixel UNet, save, evaluate (sampled as ``profile.generator`` says).

    ``resume_from`` (a stand-in generator folder): keep its text encoder and tokenizer and continue training
    its (EMA) UNet for another schedule, instead of starting from scratch.
    """
    import copy
    import json

    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm
    from transformers import CLIPTextModel

    from .worlddata import to_unit_tensor, world_grid

    cfg, sampling = recipe, profile.generator
    size = profile.world.image_size
    grid = world_grid(size)
    train_sched, sample_sched = schedulers()
    if resume_from is None:
        clip, tokenizer, figures = pretrain_text_encoder(cfg, size, grid, log=log)
        # a standalone CLIPTextModel with the pretrained text tower's weights (SD's text encoder class)
        text_encoder = CLIPTextModel(clip.config.text_config)
        getattr(text_encoder, "text_model", text_encoder).load_state_dict(clip.text_model.state_dict())  # 4.x nests
        torch.manual_seed(cfg.seed)
        unet = tiny_unet(cfg, size)
        previous_steps, previous_recipe, previous_config, vae = 0, None, {}, None
    else:
        old = load_generator(_with_generator_path(profile, resume_from)).pipeline
        text_encoder, tokenizer, unet, vae = old.text_encoder, old.tokenizer, old.unet, old.vae
        card = json.loads((Path(resume_from) / "model_card.json").read_text())
        previous_config = card["config"]
        figures = {k: v for k, v in card["figures"].items() if k.startswith("text_encoder_")}
        previous_steps = int(card["figures"].get("unet_steps", 0))
        previous_recipe = card["recipe"]
        unet.requires_grad_(True)
        torch.manual_seed(cfg.seed + previous_steps)
    text_encoder.requires_grad_(False).eval()
    ema = copy.deepcopy(unet).requires_grad_(False)
    pipe = build_pipeline(ema, text_encoder, tokenizer, sample_sched, vae=vae)

    # precompute: every grid image, and the frozen text states of every grid caption and of ""
    images = torch.stack([to_unit_tensor(im) for im in grid.images])  # (216, J, 3, H, W)
    captions = [c for caps in grid.captions for c in caps]
    n_cap = len(grid.captions[0])
    gen = ImageGenerator(pipe, "", sampling.num_inference_steps, sampling.guidance_scale)
    states = gen.encode_text(captions).view(len(grid.shapes), n_cap, cfg.max_length, -1)
    empty = gen.encode_text([""])[0]

    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    total, budget = cfg.unet_train_steps, cfg.unet_train_minutes * 60
    warmup = max(1, min(200, total // 20))
    rng = torch.Generator().manual_seed(cfg.seed + previous_steps)
    alphas = train_sched.alphas_cumprod
    unet.train()
    t0 = time.time()
    step = 0
    bar = tqdm(total=total, desc="train generator UNet", mininterval=10)
    while True:
        # progress: by steps, or by wall clock when a budget is set (the cosine then ends on time)
        progress = step / total if not budget else max(step / total, (time.time() - t0) / budget)
        if progress >= 1:
            break
        for group in opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * progress))
        b = cfg.batch_size
        si = torch.randint(len(grid.shapes), (b,), generator=rng)
        ji = torch.randint(images.shape[1], (b,), generator=rng)
        ci = torch.randint(n_cap, (b,), generator=rng)
        x0 = images[si, ji]
        cond = states[si, ci]
        drop = torch.rand(b, generator=rng) < cfg.uncond_prob
        cond = torch.where(drop.view(-1, 1, 1), empty.expand_as(cond), cond)
        t = torch.randint(train_sched.config.num_train_timesteps, (b,), generator=rng)
        noise = torch.randn(x0.shape, generator=rng)
        a = alphas[t].sqrt().view(-1, 1, 1, 1)
        s = (1 - alphas[t]).sqrt().view(-1, 1, 1, 1)
        xt, v = a * x0 + s * noise, a * noise - s * x0  # v-prediction target
        loss = F.mse_loss(unet(xt, t, encoder_hidden_states=cond).sample, v)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            # EMA warm-up so early averages are not all initialisation (a resumed run starts from a good EMA)
            decay = cfg.ema_decay if previous_steps else min(cfg.ema_decay, (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - decay)
        step += 1
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", min=f"{(time.time() - t0) / 60:.1f}")
        if step % 500 == 0:
            log(f"UNet step {step}, loss {loss.item():.4f}, {(time.time() - t0) / 60:.1f} min")
    bar.close()
    unet_s = time.time() - t0
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    loaded = load_generator(_with_generator_path(profile, out_dir))
    n_eval = min(216, profile.world.n_heldout, profile.world.n_test)  # every combination once where the world allows
    for split, examples in generator_eval_sets(profile.world, n_eval).items():
        for k, v in generator_accuracy(loaded, examples, seed=cfg.seed).items():
            figures[f"{split}_{k}"] = v
    figures |= {"unet_steps": previous_steps + step, "unet_train_seconds": round(unet_s, 1)}
    if previous_steps:
        figures["unet_resumed_after_steps"] = previous_steps
    n_unet = sum(p.numel() for p in unet.parameters())
    write_model_card(
        out_dir, title="Image generator stand-in (diffusers StableDiffusionPipeline, pixel space)",
        config={"name_or_path": sampling.name_or_path, "num_inference_steps": sampling.num_inference_steps,
                "guidance_scale": sampling.guidance_scale, **_chained(vars(cfg), previous_config),
                "unet_parameters": n_unet,
                "text_encoder_parameters": sum(p.numel() for p in text_encoder.parameters()),
                "image_size": size, "scheduler": "DDIM (trailing), squaredcos_cap_v2, v_prediction"},
        data=f"world grid: all {len(grid.shapes)} combinations x {images.shape[1]} jitters x {n_cap} caption templates "
             "(as SD was trained on far more than GILL's corpus, it can draw GILL's held-out combinations)",
        recipe=_recipe(cfg, sampling, n_unet, step, unet_s, previous_recipe),
        figures=figures | {"note": f"probe accuracy on images generated from {n_eval} held-out captions per split"},
    )
    log(f"generator: {figures}")
    return figures


def _chained(config: dict, previous: dict) -> dict:
    """A resumed run's card config: the UNet's rate and time budget as a history (``"0.001, then 0.0003
    (resumed)"``), everything else as this run's recipe."""
    out = dict(config)
    for key in ("lr", "unet_train_minutes"):
        if key in previous:
            earlier = str(previous[key]).removesuffix(" (resumed)")
            if " then " in earlier:  # "a, then b and c" -> "a, then b, c and d"
                out[key] = earlier.replace(" and ", ", ") + f" and {config[key]} (resumed)"
            else:
                out[key] = f"{earlier}, then {config[key]} (resumed)"
    return out


def _recipe(cfg, sampling_cfg, n_unet: int, steps: int, seconds: float, previous: str | None) -> str:
    """The card's training paragraph (``cfg`` the recipe, ``sampling_cfg`` the profile's generator); a resumed
    run appends its continuation to the previous one."""
    sampling = (f" Sampling: DDIM {sampling_cfg.num_inference_steps} steps, guidance {sampling_cfg.guidance_scale}, "
                "`output_type='latent'` (pixel space).")
    if previous:
        return (previous.split(" Sampling:")[0] + f" Resumed from the EMA weights: {steps} more steps, AdamW "
                f"{cfg.lr} cosine ({seconds / 60:.1f} min CPU)." + sampling)
    return (f"1. tiny CLIPModel (text {cfg.text_layers} layers d{cfg.text_width}, vision {cfg.vision_layers} layers) "
            f"contrastive, {cfg.text_pretrain_steps} steps of batch {cfg.text_batch_size} (each combination once), "
            f"AdamW {cfg.text_lr}; its text tower frozen as the pipeline's text encoder. "
            f"2. UNet ({n_unet / 1e6:.2f}M) v-prediction on precomputed text states, batch {cfg.batch_size}, "
            f"AdamW {cfg.lr} cosine, EMA {cfg.ema_decay}, {cfg.uncond_prob:.0%} empty captions, {steps} steps "
            f"({seconds / 60:.1f} min CPU), seed {cfg.seed}." + sampling)


def _with_generator_path(profile, path):
    from dataclasses import replace

    return replace(profile, generator=replace(profile.generator, name_or_path=str(path)))
