"""StableDiffusionPipeline folders (save_pretrained format) loaded and driven like Stable Diffusion."""
import os

import numpy as np
import pytest
import torch

from gill_lite.backbones.generator import build_pipeline, load_generator, pixel_vae, schedulers, tiny_unet
from gill_lite.backbones.recipes import standin_recipe
from gill_lite.backbones.tokenizer import build_word_tokenizer, world_words
from gill_lite.config import get_profile

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _profile(path, **gen):
    return get_profile("ci", generator={"name_or_path": str(path), **gen})


def _text_encoder(width, max_length, layers=1, heads=2, vocab=None):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(vocab_size=vocab, hidden_size=width, intermediate_size=2 * width,
                                        num_hidden_layers=layers, num_attention_heads=heads,
                                        max_position_embeddings=max_length, pad_token_id=0, bos_token_id=1,
                                        eos_token_id=1))


@pytest.fixture(scope="module")
def pixel_folder(tmp_path_factory):
    """A stand-in-style pipeline: pixel-space UNet, one-block VAE, word-level tokenizer."""
    folder = tmp_path_factory.mktemp("gen")
    cfg = standin_recipe(get_profile("ci")).generator
    tok = build_word_tokenizer(world_words(), template="eos", model_max_length=cfg.max_length)
    torch.manual_seed(0)
    pipe = build_pipeline(tiny_unet(cfg, 32), _text_encoder(cfg.text_width, cfg.max_length, vocab=len(tok)), tok,
                          schedulers()[1])
    pipe.save_pretrained(folder)
    return folder


def test_pixel_space_pipeline_roundtrip(pixel_folder):
    gen = load_generator(_profile(pixel_folder))
    assert gen.pixel_space and gen.max_length == 16 and gen.text_width == 64
    assert type(gen.pipeline).__name__ == "StableDiffusionPipeline"
    emb = gen.encode_text(["a red circle.", "a small blue square at the top left."])
    assert emb.shape == (2, 16, 64) and emb.dtype == torch.float32
    # the target is what the pipeline itself computes for a prompt
    own, _ = gen.pipeline.encode_prompt(["a red circle."], "cpu", 1, False)
    torch.testing.assert_close(emb[:1], own)
    images = gen.generate(emb, seed=3, num_inference_steps=2)
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    # one generator per image: image k depends on (seed, k), not on the batch around it
    assert np.array_equal(gen.generate(emb[:1], seed=3, num_inference_steps=2), images[:1])
    assert np.array_equal(gen.generate(emb, seed=3, num_inference_steps=2, batch_size=1), images)
    assert not np.array_equal(gen.generate(emb, seed=4, num_inference_steps=2), images)
    # classifier-free guidance path (negative = empty prompt) and the text baseline
    assert gen.generate(emb, seed=0, num_inference_steps=2, guidance_scale=3.0).shape == (2, 32, 32, 3)
    from_text = gen.generate_from_text(["a red circle.", "a small blue square at the top left."], seed=3, num_inference_steps=2)
    assert np.array_equal(from_text, images)


def test_bad_inputs_are_clear_errors(pixel_folder):
    gen = load_generator(_profile(pixel_folder))
    with pytest.raises(ValueError, match="prompt_embeds"):
        gen.generate(torch.zeros(1, 8, 64))
    with pytest.raises(TypeError):
        gen.encode_text("a red circle.")
    with pytest.raises(FileNotFoundError, match="ensure_standins"):
        load_generator(_profile("models/no-such-generator"))


def test_latent_space_pipeline_decodes_with_its_vae(tmp_path):
    """An SD-like layout (VAE with downsampling, 4 latent channels) is decoded by its VAE, not read as pixels."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel

    tok = build_word_tokenizer(world_words(), template="eos", model_max_length=16)
    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), latent_channels=4,
                        norm_num_groups=8, layers_per_block=1)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 16),
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
                                cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=_text_encoder(32, 16, vocab=len(tok)), tokenizer=tok,
                                   unet=unet, scheduler=schedulers()[1], safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(tmp_path)
    gen = load_generator(_profile(tmp_path))
    assert not gen.pixel_space
    images = gen.generate(gen.encode_text(["a red circle."]), seed=0, num_inference_steps=2)
    assert images.shape == (1, 16, 16, 3) and images.dtype == np.uint8


def test_paper_shaped_text_encoder_77x768(tmp_path):
    """SD v1.5's text encoder width and length (77 x 768) at one layer: the GILL generation target's shape."""
    cfg = standin_recipe(get_profile("ci")).generator
    tok = build_word_tokenizer(world_words(), template="eos", model_max_length=77)
    torch.manual_seed(0)
    from dataclasses import replace

    unet = tiny_unet(replace(cfg, text_width=768), 32)
    pipe = build_pipeline(unet, _text_encoder(768, 77, heads=12, vocab=len(tok)), tok, schedulers()[1])
    pipe.save_pretrained(tmp_path)
    gen = load_generator(_profile(tmp_path))
    assert (gen.max_length, gen.text_width) == (77, 768)
    emb = gen.encode_text(["a red circle.", ""])
    assert emb.shape == (2, 77, 768)
    assert gen.generate(emb, seed=0, num_inference_steps=1).shape == (2, 32, 32, 3)
