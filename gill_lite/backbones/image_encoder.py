"""The frozen image encoder (and the evaluation CLIP): open_clip models.

``paper``: ``open_clip.create_model("ViT-L-14-quickgelu", pretrained="openai")`` (QuickGELU, as OpenAI trained it;
the loader refuses OpenAI weights in a GELU build, `require_quick_gelu`).
Stand-ins: a tiny CLIP described by an open_clip model config (ViT 32 px, patch 8; a small text tower with a
word-level tokenizer), saved as ``open_clip_config.json`` + ``open_clip_model.safetensors`` + a transformers
tokenizer, and loaded with ``open_clip.create_model("local-dir:<folder>")`` / ``open_clip.get_tokenizer(...)``,
the way open_clip loads a hub snapshot (``hf_tokenizer_name`` in the text config makes open_clip read the
tokenizer from the same folder).

What GILL uses (``encode``) is the *pooled vector before the projection*: for ViT-L/14 the class token after
``ln_post``, 1024-d (HF's ``CLIPVisionModel(...).pooler_output``), not the 768-d ``image_features``. open_clip's
``VisionTransformer.forward`` ends with ``pooled = pooled @ self.proj`` when ``proj`` is set, so ``encode`` runs
the visual tower with ``proj`` detached (``_without_projection``) and ``hidden_size == visual.proj.shape[0]``.
``embed_images``/``embed_texts`` are the usual L2-normalised projected CLIP embeddings (similarity, retrieval).
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cards import config_name_for, weights_digest, write_model_card
from .tokenizer import build_word_tokenizer, world_words

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@contextlib.contextmanager
def _without_projection(visual):
    proj = visual.proj
    visual.proj = None
    try:
        yield
    finally:
        visual.proj = proj


@dataclass
class ImageEncoder:
    """An open_clip CLIP model, its tokenizer and its image preprocessing (size, mean, std)."""

    model: object
    tokenizer: object
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    config_name: str

    @property
    def hidden_size(self) -> int:
        """Width of the pooled pre-projection vector (1024 for ViT-L/14)."""
        proj = self.model.visual.proj
        return int(proj.shape[0]) if proj is not None else int(self.model.visual.output_dim)

    @property
    def embed_dim(self) -> int:
        proj = self.model.visual.proj
        return int(proj.shape[1]) if proj is not None else int(self.model.visual.output_dim)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def preprocess(self, images):
        """uint8 (N, H, W, 3) array or list of PIL images -> normalised float (N, 3, S, S).

        As CLIP's transform: bicubic resize of the shorter side to S, centre crop, CLIP mean/std.
        """
        import torch
        import torch.nn.functional as F

        if isinstance(images, np.ndarray):
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
            batch = [images]
        else:
            batch = [np.asarray(im.convert("RGB"), dtype=np.uint8)[None] for im in images]
        out = []
        for arr in batch:
            x = torch.from_numpy(np.array(arr, copy=True)).permute(0, 3, 1, 2).float().div(255.0)
            h, w = x.shape[-2:]
            s = self.image_size
            if (h, w) != (s, s):
                scale = s / min(h, w)
                nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
                x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
                top, left = (nh - s) // 2, (nw - s) // 2
                x = x[..., top:top + s, left:left + s]
            out.append(x)
        x = torch.cat(out)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device, next(self.model.parameters()).dtype)

    def encode(self, images, batch_size: int = 256):
        """Pooled visual features BEFORE the projection, float (N, hidden_size): GILL's image input."""
        import torch

        feats = []
        with torch.no_grad(), _without_projection(self.model.visual):
            for i in range(0, len(images), batch_size):
                feats.append(self.model.visual(self.preprocess(images[i:i + batch_size])).float())
        return torch.cat(feats) if feats else torch.zeros(0, self.hidden_size)

    def embed_images(self, images, batch_size: int = 256):
        """L2-normalised projected image embeddings (N, embed_dim)."""
        import torch

        with torch.no_grad():
            feats = [self.model.encode_image(self.preprocess(images[i:i + batch_size]), normalize=True).float()
                     for i in range(0, len(images), batch_size)]
        return torch.cat(feats)

    def embed_texts(self, texts: list[str], batch_size: int = 256):
        """L2-normalised projected text embeddings (N, embed_dim)."""
        import torch

        if isinstance(texts, str):
            raise TypeError("embed_texts takes a list of strings")
        with torch.no_grad():
            feats = [self.model.encode_text(self.tokenizer(list(texts[i:i + batch_size])).to(self.device), normalize=True).float()
                     for i in range(0, len(texts), batch_size)]
        return torch.cat(feats)


def with_path(profile, part: str, path) -> object:
    """``profile`` with ``profile.<part>.name_or_path`` set to ``path``."""
    from dataclasses import replace

    return replace(profile, **{part: replace(getattr(profile, part), name_or_path=str(path))})


def _part_config(profile, which: str):
    if which not in ("image_encoder", "eval_clip"):
        raise ValueError(f"which must be 'image_encoder' or 'eval_clip', not {which!r}")
    return getattr(profile, which)


def uses_quick_gelu(model) -> bool:
    """Whether an open_clip model's towers use QuickGELU (``x * sigmoid(1.702 x)``) rather than exact GELU."""
    from open_clip.transformer import QuickGELU

    return any(isinstance(m, QuickGELU) for m in model.modules())


def _needs_quick_gelu(pretrained: str | None) -> bool:
    # OpenAI's CLIP weights were trained with QuickGELU; open_clip 3.x builds plain "ViT-L-14" with nn.GELU and
    # only warns when openai weights go into it, which skews every feature a little (gill_spec.md, image encoder)
    return bool(pretrained) and pretrained.lower().startswith("openai")


def require_quick_gelu(name: str, pretrained: str | None) -> None:
    """Refuse, before loading anything, an open_clip built-in ``name`` whose config lacks QuickGELU when
    ``pretrained`` is OpenAI's weights: use the ``-quickgelu`` name (``ViT-L-14-quickgelu``)."""
    import open_clip

    if not _needs_quick_gelu(pretrained) or name.startswith("hf-hub:"):
        return
    config = open_clip.get_model_config(name)
    if config is not None and not config.get("quick_gelu", False):
        raise ValueError(
            f"image encoder {name!r} with pretrained={pretrained!r}: OpenAI's CLIP weights need QuickGELU, but "
            f"{name!r} builds GELU; use {name + '-quickgelu'!r} (open_clip's QuickGELU config of the same model)")


def check_activation(model, pretrained: str | None, name: str = "model") -> None:
    """After building: refuse OpenAI weights in a model whose activations are not QuickGELU (`require_quick_gelu`
    checks the config; this checks the modules, e.g. for an ``hf-hub:`` model)."""
    if _needs_quick_gelu(pretrained) and not uses_quick_gelu(model):
        raise ValueError(f"{name} was built with GELU but loads {pretrained!r} weights, trained with QuickGELU; "
                         "build it with QuickGELU (the '-quickgelu' model name or force_quick_gelu=True)")


def load_image_encoder(profile, which: str = "image_encoder", device: str | None = None) -> ImageEncoder:
    """Load ``profile.image_encoder`` (or ``profile.eval_clip``) frozen, in eval mode.

    ``name_or_path`` is a built-in open_clip name with ``pretrained`` tag (``ViT-L-14`` + ``openai``), an
    ``hf-hub:`` id, or a local folder holding ``open_clip_config.json`` (the stand-ins).
    """
    import open_clip

    cfg = _part_config(profile, which)
    source = profile.resolve(cfg.name_or_path)
    if Path(source).is_dir():
        if not (Path(source) / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{source} has no {CONFIG_FILE}: not an open_clip model folder")
        name = f"local-dir:{source}"
        model = open_clip.create_model(name)
        tokenizer = open_clip.get_tokenizer(name)
        model_cfg = json.loads((Path(source) / CONFIG_FILE).read_text())["model_cfg"]
    elif source.startswith(("/", "./", "models/")):
        raise FileNotFoundError(
            f"{which} folder {source} does not exist; build the stand-ins with "
            f"`gill_lite.backbones.ensure_standins(profile)` (profile {profile.name!r})"
        )
    else:
        require_quick_gelu(source, cfg.pretrained)  # before any download: refuse a GELU build of openai weights
        model = open_clip.create_model(source, pretrained=cfg.pretrained)
        check_activation(model, cfg.pretrained, source)
        tokenizer = open_clip.get_tokenizer(source)
        model_cfg = open_clip.get_model_config(source.removeprefix("hf-hub:")) or {"name": source}
        model_cfg = {**model_cfg, "pretrained": cfg.pretrained}
    model.requires_grad_(False).eval()
    if device:
        model.to(device)
    pcfg = open_clip.get_model_preprocess_cfg(model)
    size = pcfg.get("size", model.visual.image_size)
    size = size[0] if isinstance(size, (tuple, list)) else size
    return ImageEncoder(
        model=model, tokenizer=tokenizer, image_size=int(size),
        mean=tuple(pcfg.get("mean", OPENAI_MEAN)), std=tuple(pcfg.get("std", OPENAI_STD)),
        config_name=config_name_for(source, model_cfg, weights_digest(source) if Path(source).is_dir() else None),
    )


def tiny_clip_config(cfg, vocab_size: int, image_size: int, tokenizer_dir: str = ".") -> dict:
    """An open_clip ``model_cfg`` for a stand-in CLIP of input size ``image_size``, from a `ClipRecipe`."""
    return {
        "embed_dim": cfg.embed_dim,
        "vision_cfg": {"image_size": image_size, "layers": cfg.layers, "width": cfg.width,
                       "patch_size": cfg.patch_size, "head_width": cfg.width // cfg.heads},
        "text_cfg": {"context_length": cfg.context_length, "vocab_size": vocab_size, "width": cfg.text_width,
                     "heads": cfg.heads, "layers": cfg.text_layers,
                     # word-level tokenizer saved in the same folder; pool at its </s> (id 1), pad id 0
                     "hf_tokenizer_name": tokenizer_dir, "pad_id": 0, "eos_id": 1, "pool_type": "eos"},
    }


def save_open_clip_folder(model, model_cfg: dict, out_dir, tokenizer=None, image_size: int = 32) -> None:
    """Write an open_clip model folder (config JSON + safetensors [+ tokenizer]) like a hub snapshot."""
    from gill_lite.io import atomic_save_file, atomic_write_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    preprocess = {"mean": list(OPENAI_MEAN), "std": list(OPENAI_STD), "size": image_size,
                  "interpolation": "bicubic", "resize_mode": "shortest"}
    atomic_write_json(out_dir / CONFIG_FILE, {"model_cfg": model_cfg, "preprocess_cfg": preprocess})
    atomic_save_file({k: v.detach().cpu() for k, v in model.state_dict().items()}, out_dir / WEIGHTS_FILE)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)


def clip_recall(encoder: ImageEncoder, images: np.ndarray, captions: list[str], shapes=None, pool: int = 100) -> dict:
    """Text-to-image recall@1 in pools of ``pool`` images (the caption's own image ranked first).

    With ``shapes``, also ``attribute_recall_at_1``: the top image shows the caption's combination (a pool can
    hold two renders of one combination that differ only by a pixel of jitter).
    """
    import torch

    hits, attr_hits, n = 0, 0, 0
    for i in range(0, len(images) - pool + 1, pool):
        img = encoder.embed_images(images[i:i + pool])
        txt = encoder.embed_texts(captions[i:i + pool])
        top = (txt @ img.T).argmax(1)
        hits += int((top == torch.arange(pool)).sum())
        if shapes is not None:
            attr_hits += sum(shapes[i + int(t)] == shapes[i + k] for k, t in enumerate(top))
        n += pool
    if n == 0:
        raise ValueError(f"need at least {pool} images for pools of {pool}")
    out = {"recall_at_1": round(hits / n, 4)}
    if shapes is not None:
        out["attribute_recall_at_1"] = round(attr_hits / n, 4)
    return out


def clip_eval_sets(world_cfg, n: int = 500) -> dict:
    """Held-out corpus images for CLIP recall: test split (seen combinations) and held-out combinations."""
    from gill_lite.world.corpus import make_split, render_images

    out = {}
    for split in ("test", "heldout"):
        ex = make_split(split, n, world_cfg.seed, world_cfg.heldout_fraction, world_cfg.image_size)
        out[split] = (render_images(ex, world_cfg.image_size), [e.caption for e in ex], [e.shape for e in ex])
    return out


def pretrain_clip(profile, which: str, recipe, out_dir, log=print) -> dict:
    """Train the stand-in CLIP of ``recipe`` (a `ClipRecipe`) contrastively and save it as an open_clip folder
    with a model card; its input size is ``profile.<which>.image_size``.

    ``image_encoder`` reads the corpus train split; ``eval_clip`` (a different seed) reads the world grid,
    every combination (see `gill_lite.backbones.worlddata`), so it can judge novel compositions too.
    """
    import open_clip
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from gill_lite.world.corpus import make_split

    from .worlddata import corpus_groups, world_grid

    cfg, image_size = recipe, _part_config(profile, which).image_size
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 7])
    tokenizer = build_word_tokenizer(world_words(), template="eos", model_max_length=cfg.context_length)
    model_cfg = tiny_clip_config(cfg, len(tokenizer), image_size, tokenizer_dir=".")
    model = open_clip.CLIP(**model_cfg)
    # written first (weights again at the end): open_clip reads the tokenizer through this folder's config
    save_open_clip_folder(model, model_cfg, out_dir, tokenizer=tokenizer, image_size=image_size)
    w = profile.world
    if cfg.data == "corpus":
        data = corpus_groups(make_split("train", w.n_train, w.seed, w.heldout_fraction, w.image_size), w.image_size)
        data_text = f"corpus train split: {w.n_train} captioned renders of {len(data.shapes)} combinations"
    else:
        data = world_grid(w.image_size)
        data_text = (f"world grid: all {len(data.shapes)} combinations x {len(data.images[0])} jitters x "
                     f"{len(data.captions[0])} caption templates")
    enc = ImageEncoder(model, open_clip.get_tokenizer(f"local-dir:{out_dir}"), image_size, OPENAI_MEAN, OPENAI_STD, "")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.1)
    warmup = max(1, cfg.pretrain_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.pretrain_steps) / cfg.pretrain_steps))
    )
    model.train()
    t0 = time.time()
    for step in (bar := tqdm(range(cfg.pretrain_steps), desc=f"pretrain {which}", mininterval=10)):
        images, captions, _ = data.batch(rng, cfg.batch_size)
        img = F.normalize(model.encode_image(enc.preprocess(images)), dim=-1)
        txt = F.normalize(model.encode_text(enc.tokenizer(captions)), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        labels = torch.arange(len(images))
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        loss.backward()
        opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    train_s = time.time() - t0
    model.eval()
    save_open_clip_folder(model, model_cfg, out_dir, image_size=image_size)
    loaded = load_image_encoder(with_path(profile, which, out_dir), which)
    figures = {}
    for split, (images, captions, shapes) in clip_eval_sets(w, n=min(500, w.n_test)).items():
        for k, v in clip_recall(loaded, images, captions, shapes).items():
            figures[f"{split}_{k}"] = v
    n_params = sum(p.numel() for p in model.parameters())
    write_model_card(
        out_dir, title=f"CLIP stand-in ({which}, open_clip)",
        config={"image_size": image_size, **vars(cfg), "vocab_size": len(tokenizer), "parameters": n_params},
        data=data_text + "; every batch holds distinct combinations (no false negatives)",
        recipe=f"symmetric InfoNCE, AdamW lr {cfg.lr}, wd 0.1, warm-up {warmup} then cosine, {cfg.pretrain_steps} "
               f"steps of batch {cfg.batch_size}, seed {cfg.seed}, {train_s / 60:.1f} min on CPU",
        figures=figures | {"note": "text-to-image recall@1 in pools of 100 held-out corpus images"},
        summary="Loaded with `open_clip.create_model('local-dir:<this folder>')`; the tokenizer is the "
                "word-level one in this folder (open_clip reads it through `hf_tokenizer_name`).",
    )
    log(f"{which}: {figures} in {train_s:.0f}s")
    return figures | {"train_seconds": round(train_s, 1)}
