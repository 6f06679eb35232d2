"""The ci stand-ins are built from scratch (training code exercised end to end), then loaded as frozen parts."""
import json
import os

import numpy as np
import pytest
import torch

from gill_lite.config import get_profile

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _quick_ci():
    """The ci profile and its stand-in recipe with even fewer steps: this test checks the plumbing, CI's notebooks
    use the ci recipe."""
    from gill_lite.backbones.recipes import standin_recipe

    profile = get_profile("ci")
    return profile, standin_recipe(profile, lm={"pretrain_steps": 3}, image_encoder={"pretrain_steps": 2},
                                   eval_clip={"pretrain_steps": 2},
                                   generator={"text_pretrain_steps": 2, "unet_train_steps": 2})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    old = os.environ.get("GILL_RUNS_DIR")
    os.environ["GILL_RUNS_DIR"] = str(runs)
    torch.set_num_threads(1)
    from gill_lite.backbones import ensure_standins

    profile, recipe = _quick_ci()
    figures = ensure_standins(profile, log=lambda m: None, recipe=recipe)
    yield profile, recipe, figures
    if old is None:
        os.environ.pop("GILL_RUNS_DIR")
    else:
        os.environ["GILL_RUNS_DIR"] = old


def test_ci_standins_are_built_with_cards(built):
    from gill_lite.backbones import standin_dir

    profile, _, figures = built
    assert set(figures) == {"lm", "clip", "eval_clip", "generator"}
    for part in figures:
        folder = standin_dir(profile, part)
        assert folder.parent == profile.run_dir / "models"
        card = json.loads((folder / "model_card.json").read_text())
        assert card["figures"] and (folder / "MODEL_CARD.md").read_text().startswith("# ")
        assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt*"))  # safetensors only
    assert {"perplexity_captions", "perplexity_stories"} <= set(figures["lm"])
    assert {"test_all", "heldout_all", "test_position"} <= set(figures["generator"])
    assert "test_recall_at_1" in figures["clip"]


def test_second_call_builds_nothing(built):
    from gill_lite.backbones import ensure_standins

    profile, _, _ = built
    assert ensure_standins(profile, log=lambda m: None) == {}


def test_load_frozen_parts_gives_consistent_shapes(built):
    from gill_lite.backbones import load_frozen_parts

    profile, recipe, _ = built
    parts = load_frozen_parts(profile, build_missing=False)
    assert parts.lm.hidden_size == recipe.lm.hidden_size
    assert parts.image_encoder.hidden_size == recipe.image_encoder.width
    assert (parts.generator.max_length, parts.generator.text_width) == (recipe.generator.max_length, recipe.generator.text_width)
    images = np.zeros((2, 32, 32, 3), np.uint8)
    assert parts.image_encoder.encode(images).shape == (2, recipe.image_encoder.width)
    assert parts.eval_clip.embed_images(images).shape == (2, recipe.eval_clip.embed_dim)
    names = parts.config_names
    assert len(set(names.values())) == 4 and all(names.values())
    # the two CLIPs are trained separately: different weights
    a = parts.image_encoder.model.visual.proj
    b = parts.eval_clip.model.visual.proj
    assert a.shape == b.shape and not torch.equal(a, b)


def test_paper_profile_never_builds():
    from gill_lite.backbones import build_standins, ensure_standins

    paper = get_profile("paper")
    assert ensure_standins(paper) == {}
    with pytest.raises(ValueError, match="hub models"):
        build_standins(paper)


def test_generator_resume_continues_the_unet_only(built):
    from gill_lite.backbones import build_standins, load_generator, standin_dir

    profile, recipe, _ = built
    folder = standin_dir(profile, "generator")
    vae_file = folder / "vae" / "diffusion_pytorch_model.safetensors"
    vae_bytes, lr_before = vae_file.read_bytes(), json.loads((folder / "model_card.json").read_text())["config"]["lr"]
    before = load_generator(profile)
    figures = build_standins(profile, parts=("generator",), resume_generator=True, log=lambda m: None,
                             recipe=recipe)["generator"]
    after = load_generator(profile)
    assert vae_file.read_bytes() == vae_bytes  # the unused pixel-space VAE is kept, not re-drawn
    card = json.loads((folder / "model_card.json").read_text())
    assert card["config"]["lr"] == f"{lr_before}, then {recipe.generator.lr} (resumed)"
    assert figures["unet_steps"] == 2 * recipe.generator.unet_train_steps
    assert figures["unet_resumed_after_steps"] == recipe.generator.unet_train_steps
    for a, b in zip(before.pipeline.text_encoder.parameters(), after.pipeline.text_encoder.parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(before.pipeline.unet.parameters(), after.pipeline.unet.parameters()))
    assert after.config_name == before.config_name  # same frozen part for GILL: targets unchanged
    assert "Resumed" in card["recipe"]


def test_frozen_names_do_not_depend_on_where_the_clone_lives():
    """Nested sub-configs carry an absolute ``_name_or_path``: it never enters a frozen part's name."""
    from gill_lite.backbones.cards import config_name_for

    def config(root):
        return {"unet": {"_name_or_path": f"{root}/models/tiny/generator/unet", "sample_size": 32},
                "text_encoder": [{"_name_or_path": f"{root}/te", "hidden_size": 128}], "_name_or_path": root}

    a = config_name_for("/a/models/tiny/generator", config("/a"), "w1")
    assert a == config_name_for("/elsewhere/models/tiny/generator", config("/elsewhere"), "w1")
    assert a != config_name_for("/a/models/tiny/generator", config("/a"), "w2")
    changed = config("/a")
    changed["unet"]["sample_size"] = 64
    assert a != config_name_for("/a/models/tiny/generator", changed, "w1")
