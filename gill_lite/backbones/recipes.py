"""How the ShapeStories stand-ins of the frozen parts are built: architectures, pretraining data and schedules.

GILL never reads these values. It reads the built parts (their sizes come from the loaded models) through the
names and sampling settings in `gill_lite.config`; `gill_lite.backbones.build` reads a recipe to build them, and
each stand-in's model card records the recipe it was built with. A profile names its recipe
(``Profile.standins``: ``"tiny"``, ``"ci"``; None for ``paper``, whose frozen parts come from the hub)::

    from gill_lite.backbones.recipes import standin_recipe
    recipe = standin_recipe(profile)                      # recipe.lm, .image_encoder, .eval_clip, .generator
    quick = standin_recipe(profile, lm={"pretrain_steps": 3})   # overrides, as `get_profile` takes them

Changing a recipe changes the stand-ins once they are rebuilt (``gill-lite standins --rebuild``); GILL's
checkpoints then refuse them by name (`gill_lite.backbones.cards.config_name_for`), as they should.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class LanguageModelRecipe:
    """The LM stand-in: a small OPT pretrained on ShapeStories text (`gill_lite.world.text.lm_pretraining_texts`)."""

    hidden_size: int = 128
    num_layers: int = 6  # 4 layers tracked kind and size through a story but not position (context_trials.md)
    num_heads: int = 4
    ffn_dim: int = 512
    max_positions: int = 128  # the longest context GILL builds (5 captions + 4 images + [IMG]) is about 80
    block_size: int = 128  # pretraining blocks cover every position GILL uses
    pretrain_steps: int = 3000
    batch_size: int = 64
    lr: float = 1.5e-3
    seed: int = 0
    n_stories: int = 16000  # narrated stories only the LM stand-in reads (the "lm" seed stream)
    # frames per narrated story, uniform in [low, high]: of five frames only, the LM knew a fifth event ends a story
    story_frames: tuple[int, int] = (2, 8)


@dataclass(frozen=True)
class ClipRecipe:
    """A CLIP stand-in (open_clip; the image encoder and the evaluation CLIP); its input size is the profile's
    ``image_encoder.image_size`` / ``eval_clip.image_size``."""

    patch_size: int = 8
    width: int = 128
    layers: int = 4
    heads: int = 4
    embed_dim: int = 128
    text_width: int = 128
    text_layers: int = 2
    context_length: int = 24
    pretrain_steps: int = 1600  # 400 read kind on held-out combinations at 0.52 (linear probe); 1600 at 0.80
    batch_size: int = 128
    lr: float = 7e-4
    seed: int = 0
    data: str = "corpus"  # training data: "corpus" (train split) or "grid" (every combination)


@dataclass(frozen=True)
class GeneratorRecipe:
    """The generator stand-in (cpu_feasibility.md): a contrastively pretrained, then frozen, CLIP text tower; a
    pixel-space UNet with v-prediction, EMA and 10% empty captions. Its sampling settings are the profile's
    ``generator`` (GILL samples it the same way)."""

    max_length: int = 16  # the text encoder's sequence length (77 in SD v1.5)
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    vision_layers: int = 2  # the generator CLIP's vision tower only teaches its text tower; it is discarded
    text_pretrain_steps: int = 300
    text_batch_size: int = 216  # every combination once per contrastive batch
    text_lr: float = 7e-4
    unet_channels: tuple[int, ...] = (32, 64, 64, 64)
    # which UNet levels cross-attend to the text (32, 16, 8, 4 px): attention at 16 px cost 2.5x per step on CPU
    unet_cross_attention: tuple[bool, ...] = (False, False, True, True)
    unet_layers_per_block: int = 1
    attention_head_dim: int = 32
    unet_train_steps: int = 3000
    unet_train_minutes: float = 30.0  # > 0: stop (and finish the cosine schedule) at this wall-clock budget
    batch_size: int = 32
    lr: float = 1e-3
    ema_decay: float = 0.998
    uncond_prob: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class StandinRecipe:
    """The four stand-ins of one profile (named as the profile's parts), where they live, and how much
    ``bench/standins.py`` measures them on."""

    lm: LanguageModelRecipe = field(default_factory=LanguageModelRecipe)
    image_encoder: ClipRecipe = field(default_factory=ClipRecipe)
    eval_clip: ClipRecipe = field(default_factory=lambda: ClipRecipe(seed=1, data="grid", pretrain_steps=400))
    generator: GeneratorRecipe = field(default_factory=GeneratorRecipe)
    # True: built once into the repo (models/<profile>/) and committed; False: built into the run dir on first use
    committed: bool = True
    # held-out LM texts, CLIP images and generator captions `bench/standins.py` measures on
    measure_texts: int = 200
    measure_images: int = 500
    measure_captions: int = 216  # every combination once


def _tiny() -> StandinRecipe:
    """The committed stand-ins under ``models/tiny/`` (their model cards record these values)."""
    return StandinRecipe()


def _ci() -> StandinRecipe:
    """The smallest stand-ins, trained from scratch in every CI run, in seconds each."""
    clip = ClipRecipe(width=64, layers=2, heads=2, embed_dim=64, text_width=64, text_layers=1, pretrain_steps=40,
                      batch_size=64)
    return StandinRecipe(
        lm=LanguageModelRecipe(hidden_size=64, num_layers=2, num_heads=2, ffn_dim=128, pretrain_steps=60,
                               batch_size=32, n_stories=200),
        image_encoder=clip,
        eval_clip=replace(clip, seed=1, data="grid"),
        generator=GeneratorRecipe(text_width=64, text_layers=1, unet_channels=(16, 32),
                                  unet_cross_attention=(False, True), text_pretrain_steps=30, unet_train_steps=30,
                                  batch_size=8, text_batch_size=32, vision_layers=1, unet_train_minutes=0.0),
        committed=False,
        measure_texts=40,
        measure_images=100,
        measure_captions=16,
    )


RECIPES = {"tiny": _tiny, "ci": _ci}


def standin_recipe(profile, **overrides) -> StandinRecipe:
    """The stand-in recipe ``profile.standins`` names, with ``part=dict(...)`` overrides (`with_overrides`).

    Raises ValueError for a profile whose frozen parts come from the hub (``standins`` None: ``paper``).
    """
    from gill_lite.config import with_overrides

    if profile.standins is None:
        raise ValueError(f"profile {profile.name!r} uses hub models; stand-ins exist for ShapeStories profiles only")
    if profile.standins not in RECIPES:
        raise ValueError(f"unknown stand-in recipe {profile.standins!r}; recipes: {', '.join(RECIPES)}")
    return with_overrides(RECIPES[profile.standins](), **overrides)
