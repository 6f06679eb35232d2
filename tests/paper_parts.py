"""Offline, reduced, random frozen parts in the `paper` profile's formats, saved as folders the loaders read.

- LM: an OPT of `gill_lite.scaling.OPT_6_7B`'s configuration at reduced width and depth, random weights
  (`bench.paper_shapes._on_meta_then`), with a byte-level BPE tokenizer trained here in OPT's format
  (``<s>`` = 0, ``<pad>`` = 1, ``</s>`` = 2, ``<unk>`` = 3; ``</s>`` prepended as BOS, as OPT's tokenizer does);
- image encoder and eval CLIP: open_clip's ``ViT-L-14-quickgelu`` config (224 px, patch 14, QuickGELU) at
  reduced depth and width, random weights, open_clip's bundled BPE for its text tower;
- generator: a StableDiffusionPipeline of v1.5's configuration (`gill_lite.scaling.SD_UNET` block types, 4 latent
  channels, VAE factor 8, PNDM scheduler as v1.5 ships it, a 77-token CLIP text encoder) at reduced width.

Nothing is downloaded; building all of it takes a few seconds.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LM_WIDTH, LM_LAYERS = 64, 2
VIT_WIDTH, VIT_LAYERS = 128, 1
TEXT_WIDTH = 32  # the SD text encoder's width (768 at v1.5); its length stays 77


def opt_tokenizer(texts, model_max_length: int = 2048):
    """A byte-level BPE tokenizer trained on ``texts``, in OPT's format (``</s>`` = 2 is BOS and EOS, pad = 1)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    tok.post_processor = processors.TemplateProcessing(single="</s> $A", pair="</s> $A $B",
                                                       special_tokens=[("</s>", 2)])
    out = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", model_max_length=model_max_length, padding_side="right")
    assert (out.pad_token_id, out.eos_token_id, out.bos_token_id) == (1, 2, 2), "not OPT's special ids"
    return out


def _corpus() -> list[str]:
    """Training text for the tokenizers: the fixtures' captions and stories, and GILL's dialogue words."""
    import json

    from gill_lite.data import load_cc3m

    rows, _ = load_cc3m(REPO / "data" / "fixtures" / "cc3m" / "cc3m.tsv", load_images=False)
    doc = json.loads((REPO / "data" / "fixtures" / "vist" / "sis.json").read_text())
    texts = [r.caption for r in rows] + [a[0]["text"] for a in doc["annotations"]]
    return texts + ["Q: what is it?\nA: a picture of a red circle.", "the quick brown fox jumps over the lazy dog"]


def build_lm(out_dir) -> Path:
    from transformers import OPTConfig, OPTForCausalLM

    from bench.paper_shapes import _on_meta_then
    from gill_lite.scaling import OPT_6_7B

    tokenizer = opt_tokenizer(_corpus())
    config = OPTConfig(**{**OPT_6_7B, "vocab_size": len(tokenizer), "hidden_size": LM_WIDTH,
                          "word_embed_proj_dim": LM_WIDTH, "num_hidden_layers": LM_LAYERS, "num_attention_heads": 2,
                          "ffn_dim": 4 * LM_WIDTH, "max_position_embeddings": 256},
                       dropout=0.0, pad_token_id=1, bos_token_id=2, eos_token_id=2)
    lm = _on_meta_then("cpu", lambda: OPTForCausalLM(config))
    lm.tie_weights()
    out_dir = Path(out_dir)
    lm.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def vit_l14_quickgelu_config() -> dict:
    """open_clip's ``ViT-L-14-quickgelu`` config at reduced depth and width (224 px, patch 14, QuickGELU kept)."""
    import open_clip

    cfg = open_clip.get_model_config("ViT-L-14-quickgelu")
    assert cfg["quick_gelu"] is True
    cfg["vision_cfg"].update(layers=VIT_LAYERS, width=VIT_WIDTH, head_width=64)
    cfg["text_cfg"].update(layers=1, width=64, heads=1)
    cfg["embed_dim"] = 64
    return cfg


def build_clip(out_dir, seed: int) -> Path:
    import open_clip
    import torch

    from gill_lite.backbones.image_encoder import save_open_clip_folder

    torch.manual_seed(seed)
    cfg = vit_l14_quickgelu_config()
    model = open_clip.CLIP(**cfg).eval()
    save_open_clip_folder(model, cfg, out_dir, image_size=224)  # no tokenizer: open_clip's bundled BPE
    return Path(out_dir)


def build_generator(out_dir) -> Path:
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from gill_lite.scaling import SD_TEXT_ENCODER, SD_UNET

    torch.manual_seed(0)
    tokenizer = opt_tokenizer(_corpus(), model_max_length=SD_TEXT_ENCODER["max_position_embeddings"])  # 77
    text = CLIPTextModel(CLIPTextConfig(**{**SD_TEXT_ENCODER, "vocab_size": len(tokenizer), "hidden_size": TEXT_WIDTH,
                                           "intermediate_size": 4 * TEXT_WIDTH, "num_hidden_layers": 1,
                                           "num_attention_heads": 2, "projection_dim": TEXT_WIDTH},
                                        pad_token_id=1, bos_token_id=2, eos_token_id=2))
    unet = UNet2DConditionModel(**{**SD_UNET, "sample_size": 224 // 8, "layers_per_block": 1,
                                   "block_out_channels": [32, 32, 32, 32], "cross_attention_dim": TEXT_WIDTH,
                                   "attention_head_dim": 8})
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        block_out_channels=[32, 32, 32, 32], norm_num_groups=32, sample_size=224)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    assert pipe.vae_scale_factor == 8
    pipe.save_pretrained(out_dir, safe_serialization=True)
    return Path(out_dir)


def paper_shaped_profile(root, **overrides):
    """The `paper` profile with its frozen parts replaced by the reduced folders under ``root`` (built once) and
    its data by the committed fixtures; ``overrides`` as `gill_lite.config.get_profile`'s (sizes, not code paths)."""
    from gill_lite.config import get_profile

    root = Path(root)
    folders = {"lm": root / "lm", "clip": root / "clip", "eval_clip": root / "eval_clip", "generator": root / "generator"}
    if not (folders["lm"] / "config.json").exists():
        build_lm(folders["lm"])
        build_clip(folders["clip"], seed=0)
        build_clip(folders["eval_clip"], seed=1)
        build_generator(folders["generator"])
    fixtures = REPO / "data" / "fixtures"
    profile = get_profile("paper", **overrides)
    return replace(
        profile,
        lm=replace(profile.lm, name_or_path=str(folders["lm"])),
        image_encoder=replace(profile.image_encoder, name_or_path=str(folders["clip"]), pretrained=None),
        eval_clip=replace(profile.eval_clip, name_or_path=str(folders["eval_clip"]), pretrained=None),
        generator=replace(profile.generator, name_or_path=str(folders["generator"])),
        data=replace(profile.data, cc3m_tsv=str(fixtures / "cc3m" / "cc3m.tsv"), cc3m_images=str(fixtures / "cc3m" / "images"),
                     vist_sis_json=str(fixtures / "vist" / "sis.json"), vist_images=str(fixtures / "vist" / "images"),
                     decision_tsv=str(fixtures / "decisions" / "PartiPromptsAllDecisions_Alignment.tsv")),
    )
