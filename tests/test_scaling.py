"""The paper-shape configs and the memory estimate: counts equal the real (meta-device) models; sane totals."""
from __future__ import annotations

import pytest
import torch

from gill_lite.scaling import (
    OPT_6_7B,
    SD_TEXT_ENCODER,
    SD_UNET,
    SD_UNET_PARAMETERS,
    VIT_L_14,
    clip_text_parameters,
    estimate_paper_memory,
    gill_trainable_parameters,
    opt_parameters,
    vit_parameters,
)


def _count(build) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        return sum(p.numel() for p in build().parameters())


def test_counts_match_the_libraries_models():
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModel, OPTConfig, OPTForCausalLM

    assert opt_parameters() == _count(lambda: OPTForCausalLM(OPTConfig(**OPT_6_7B))) == 6_658_473_984
    assert vit_parameters() == _count(lambda: CLIPVisionModel(CLIPVisionConfig(**VIT_L_14)))
    assert clip_text_parameters() == _count(lambda: CLIPTextModel(CLIPTextConfig(**SD_TEXT_ENCODER)))


def test_unet_count():
    diffusers = pytest.importorskip("diffusers")
    assert _count(lambda: diffusers.UNet2DConditionModel(**SD_UNET)) == SD_UNET_PARAMETERS


def test_trainable_parts_are_about_50m():
    parts = gill_trainable_parameters()
    assert parts["visual_prefix"] == 1024 * 4 * 4096 + 4 * 4096
    assert 45e6 < parts["total"] < 55e6  # gill_spec.md: "about 50M parameters at paper scale"


def test_memory_estimate(capsys):
    full = estimate_paper_memory()
    assert "total_gib:" in capsys.readouterr().out and full["estimate"] is True
    half = estimate_paper_memory(batch_per_gpu=50, verbose=False)
    assert full["lm_weights_gib"] == pytest.approx(6_658_473_984 * 2 / 2**30, abs=0.01)
    assert half["total_gib"] < full["total_gib"]
    assert half["lm_activations_gib"] == pytest.approx(full["lm_activations_gib"] / 2, abs=0.01)
    assert estimate_paper_memory(published_embedding=True, verbose=False)["total_gib"] > full["total_gib"]
    assert 30 < full["total_gib"] < 48  # the paper trained at batch 100 on 48 GB GPUs
