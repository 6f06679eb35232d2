"""The names that decide whether finished work is current do not move when the code is reorganised.

A GILL stage is found by its fingerprint (`gill_lite.train.loop.stage_fingerprint`: the recipe, the data, the
frozen parts' names, the previous stage), a feature cache by its caption set's name, a decision collection by
the frozen parts' weights (`gill_lite.decision.stage.frozen_fingerprint`). The values below were measured before
the stand-ins' pretraining recipes left `gill_lite.config` for `gill_lite.backbones.recipes` (issue 14): if one
changes, every finished stage (or cache, or collection) of that profile is silently retrained. Update them only
for a change that *should* retrain (a new recipe value, new data), and say so in the CHANGELOG.
"""
import pytest

from gill_lite.config import get_profile

STAGES = ("captioning", "img_tokens", "generation", "retrieval", "joint")
FAKE_FROZEN = {"lm": "lm-x", "image_encoder": "clip-x", "generator": "gen-x", "eval_clip": "ev-x"}

STAGE_FINGERPRINTS = {  # with FAKE_FROZEN: the part of the fingerprint that comes from the profile
    # the stages after captioning moved three times, on purpose: their [IMG] side reads restyled captions
    # (`train.data.restyled_texts`, CHANGELOG "Previous build (restyled [IMG] texts)"), one restyled form lost a
    # word the tokenizers did not know, and four action forms came with a 0.75 share (CHANGELOG "This build");
    # captioning and paper did not move; then all of ci's and tiny's moved once more, on purpose: their
    # captioning loss reads every example alone (`TrainConfig.caption_pairs`); then every one moved, on purpose:
    # a stage's losses and trained parts entered its fingerprint, when stage 02's rows began to learn from the
    # generation and retrieval losses (CHANGELOG "Previous build (the [IMG] rows learn from the losses that read
    # them)"); then all of ci's and tiny's once more, on purpose: BOS opens every context and captioning reads
    # `BOS [prefix] caption` (`TrainConfig.bos_before_images`); then ci's and tiny's stages after captioning, on
    # purpose: the [IMG] side's restyled forms gained two step forms ("... on the left. It moves right.",
    # CHANGELOG "This build"); paper did not move
    "ci": {"captioning": "1e71173d9899eda4", "img_tokens": "76134e18ad81cc4e", "generation": "2d1f408aefb96df4",
           "retrieval": "331ec084aed01f9f", "joint": "6d83638f939b79d6"},
    "tiny": {"captioning": "ee1bf6b3130d6483", "img_tokens": "3a21f2a749417813", "generation": "41caa69a78fb09dc",
             "retrieval": "0bc05ec76614d9ed", "joint": "6f1983a7973658d6"},
    "paper": {"captioning": "06f0500a882f9331", "img_tokens": "3f1cd8e02480ea57", "generation": "3caa057c581e519e",
              "retrieval": "7c78e24487766516", "joint": "cdd71e5b4a21ab1b"},
}
CAPTION_SET_DIGESTS = {"ci": "fd469107da", "tiny": "d411367749"}  # world-<split>-<digest>: the caches' names
# the committed stand-ins' weights, as the decision collection sees them (moved with the LM stand-in retrained
# on stories of 2-8 frames)
TINY_FROZEN_FINGERPRINT = "a5f4d4c37523abb7"


@pytest.mark.parametrize("name", sorted(STAGE_FINGERPRINTS))
def test_stage_fingerprints_are_unchanged(name):
    from gill_lite.train.loop import stage_fingerprint

    profile = get_profile(name)
    assert {s: stage_fingerprint(profile, s, FAKE_FROZEN) for s in STAGES} == STAGE_FINGERPRINTS[name]


@pytest.mark.parametrize("name", sorted(CAPTION_SET_DIGESTS))
def test_caption_set_names_are_unchanged(name):
    from gill_lite.train.data import world_caption_set

    assert world_caption_set(get_profile(name), "val").name == f"world-val-{CAPTION_SET_DIGESTS[name]}"


def test_a_recipe_or_world_change_does_change_the_fingerprint():
    """The check above can fail: a world or stand-in value that GILL's data depends on moves the fingerprint."""
    from dataclasses import replace

    from gill_lite.train.data import world_identity
    from gill_lite.train.loop import stage_fingerprint

    tiny = get_profile("tiny")
    base = stage_fingerprint(tiny, "captioning", FAKE_FROZEN)
    assert stage_fingerprint(get_profile("tiny", world={"n_train": 10}), "captioning", FAKE_FROZEN) != base
    assert stage_fingerprint(get_profile("tiny", train={"lr": 1e-4}), "captioning", FAKE_FROZEN) != base
    # the LM stand-in's story count stays in the world's identity under its old key (see `world_identity`)
    assert world_identity(tiny)["n_lm_stories"] == 16000
    assert world_identity(replace(tiny, standins="ci"))["n_lm_stories"] == 200


def test_committed_standins_frozen_fingerprint_is_unchanged():
    from gill_lite.decision.stage import frozen_fingerprint

    assert frozen_fingerprint(get_profile("tiny")) == TINY_FROZEN_FINGERPRINT
