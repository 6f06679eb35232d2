"""A `paper`-shaped run on the CPU: the `paper` profile's code path end to end, offline and small.

The same profile fields (bf16 OPT, fp16 Stable Diffusion with 77-token targets, 224 px QuickGELU ViT-L/14,
the paper's mapper / retrieval sizes, CC3M-TSV and VIST-SIS loaders, the published decision layouts) on
reduced random parts (`paper_parts`); only sizes are overridden (batch, steps, sampling steps, bootstrap) and
LPIPS is off (its AlexNet weights would be downloaded). Fails if a frozen part is left on another device than
the model (`check_frozen_devices`, and a negative test that proves the check can fail on a CPU machine).
"""
import math
from dataclasses import replace

import pytest
import torch

from paper_parts import paper_shaped_profile

torch.set_num_threads(1)

SIZES = dict(train={"batch_size": 4, "steps": 2, "warmup_steps": 1, "checkpoint_every": 1000},
             generator={"num_inference_steps": 2}, eval={"lpips": False, "bootstrap": 20, "n_stories": 2},
             decision={"n_train": 4})


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_shaped")
    mp = pytest.MonkeyPatch()
    mp.setenv("GILL_RUNS_DIR", str(root / "runs"))
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield paper_shaped_profile(root / "models", **SIZES)
    mp.undo()


def test_paper_shaped_parts_have_the_paper_formats(profile):
    from gill_lite.backbones import default_device, load_frozen_parts
    from gill_lite.backbones.image_encoder import uses_quick_gelu

    assert profile.name == "paper" and not profile.uses_world
    parts = load_frozen_parts(profile).to(default_device())
    tok = parts.lm.tokenizer
    assert (tok.eos_token_id, tok.pad_token_id, tok("a red circle").input_ids[0]) == (2, 1, 2)  # OPT: </s> first
    assert parts.lm.model.dtype == torch.bfloat16  # profile.lm.dtype at paper
    for enc in (parts.image_encoder, parts.eval_clip):
        assert uses_quick_gelu(enc.model) and enc.image_size == 224
    assert parts.generator.max_length == 77 and parts.generator.pipeline.text_encoder.dtype == torch.float16
    assert parts.generator.pipeline.vae_scale_factor == 8


def test_paper_shaped_joint_training_vist_and_decisions(profile):
    """Joint steps through `train(..., "joint", ...)`, the VIST evaluation of the fixture, the decision loaders."""
    from safetensors import safe_open

    from gill_lite.backbones import check_frozen_devices, default_device, load_frozen_parts
    from gill_lite.decision.data import PublishedVotes, decision_prompts
    from gill_lite.evaluate.stories import evaluation_stories
    from gill_lite.evaluate.vist import evaluate_vist
    from gill_lite.inference import GillPipeline
    from gill_lite.model import GillModel
    from gill_lite.train.loop import train

    parts = load_frozen_parts(profile).to(default_device())
    model = GillModel.build(parts, profile.train)
    check_frozen_devices(parts, model)
    summary = train(model, "joint", parts, profile, profile.run_dir / "gill" / "joint", progress=False)
    assert summary["finished"] and set(summary["last"]) == {"caption", "img", "gen", "ret"}
    assert all(math.isfinite(v) for v in summary["last"].values())
    check_frozen_devices(parts, model)  # every frozen part where the trained model is

    # the generation targets were cached in fp16 (the generator's precision at paper), 77 x text width
    text = [p for p in (profile.run_dir / "cache").glob("*text-float16*.safetensors")]
    assert len(text) == 1
    with safe_open(str(text[0]), framework="pt") as f:
        sl = f.get_slice("features")
        assert sl.get_dtype() == "F16" and sl.get_shape()[1:] == [77, parts.generator.text_width]

    stories, skipped = evaluation_stories(profile)
    assert len(stories) == 2 and not skipped
    pipe = GillPipeline(model.eval(), parts, profile=profile)
    result, _, _ = evaluate_vist(pipe, stories, profile.eval, skipped, batch_size=8, progress=False,
                                 oracle=False)
    assert result["counts"]["stories"] == 2
    sims = [v["clip_similarity"]["mean"] for v in result["generation"]["settings"].values()]
    assert len(sims) >= 3 and all(-1 <= s <= 1 for s in sims)  # GILL's three contexts (and SD's baselines)

    prompts, votes = decision_prompts(profile)  # the published votes layout
    assert isinstance(votes, PublishedVotes) and len(prompts) == 10
    assert votes.counts["fewer_than_5_votes"] == 1 and votes.labels.count("gen") == 2
    confident = replace(profile, data=replace(profile.data, decision_tsv=profile.data.decision_tsv.replace(
        "PartiPromptsAllDecisions_Alignment", "PartiPromptsDecisionsConfident")))
    prompts, labels = decision_prompts(confident)
    assert labels.layout == "confident" and len(prompts) == 9 and labels.labels.count("ret") == 4


def test_a_frozen_part_off_the_model_device_is_refused(profile):
    """The device check can fail on a CPU-only machine: a part on the ``meta`` device is named and refused."""
    from gill_lite.backbones import DeviceMismatchError, check_frozen_devices, load_frozen_parts
    from gill_lite.model import GillModel

    parts = load_frozen_parts(profile)
    model = GillModel.build(parts, replace(profile.train, mapper_d_model=32, mapper_ffn=64, mapper_heads=2,
                                           mapper_encoder_layers=1, mapper_decoder_layers=1))
    check_frozen_devices(parts, model)
    parts.eval_clip.model.to("meta")
    with pytest.raises(DeviceMismatchError, match=r"eval_clip on meta"):
        check_frozen_devices(parts, model)
    parts.generator.pipeline.vae.to("meta")
    with pytest.raises(DeviceMismatchError, match=r"generator\.vae on meta"):
        check_frozen_devices(parts, model)
