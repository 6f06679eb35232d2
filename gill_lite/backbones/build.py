"""Build the stand-in frozen parts (the `tiny` ones once, committed; the `ci` ones in every CI run).

    gill-lite standins --profile tiny [--rebuild] [--only lm clip eval_clip generator]

Each part is built by the profile's stand-in recipe (`gill_lite.backbones.recipes`) into
``profile.resolve(profile.<part>.name_or_path)`` (``models/tiny/<part>`` at tiny, ``<run_dir>/models/<part>`` at
ci) with a MODEL_CARD.md; a part whose folder exists is skipped unless rebuilt.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

PARTS = ("lm", "clip", "eval_clip", "generator")
_FIELD = {"lm": "lm", "clip": "image_encoder", "eval_clip": "eval_clip", "generator": "generator"}
_MARKER = {"lm": "config.json", "clip": "open_clip_config.json", "eval_clip": "open_clip_config.json",
           "generator": "model_index.json"}


def standin_dir(profile, part: str) -> Path:
    """Where a stand-in lives: a relative name resolves under the repo for committed stand-ins (the recipe's
    ``committed``: tiny) or when the repo has that folder, else under the run dir (ci)."""
    from gill_lite.config import REPO_ROOT

    from .recipes import standin_recipe

    name = getattr(profile, _FIELD[part]).name_or_path
    path = Path(name)
    if path.is_absolute():
        return path
    committed = profile.standins is not None and standin_recipe(profile).committed
    if committed or (REPO_ROOT / path).exists():
        return REPO_ROOT / path
    return profile.run_dir / path


def _built(folder: Path, part: str) -> bool:
    return (folder / _MARKER[part]).is_file() and (folder / "MODEL_CARD.md").is_file()


def build_standins(profile, parts=PARTS, rebuild: bool = False, log=print, resume_generator: bool = False,
                   recipe=None) -> dict:
    """Pretrain the requested stand-ins (LM, CLIPs first: others need them early; the generator last).

    ``recipe``: a `StandinRecipe` (default: the profile's, `standin_recipe`). ``resume_generator``: continue
    training an existing generator's UNet (same text encoder) for another schedule of the recipe's
    steps/minutes, replacing the folder when done. Returns each built part's measured figures.
    """
    import torch

    from .generator import pretrain_generator
    from .image_encoder import pretrain_clip
    from .language_model import pretrain_language_model
    from .recipes import standin_recipe

    if not profile.uses_world:
        raise ValueError(f"profile {profile.name!r} uses hub models; stand-ins exist for ShapeStories profiles only")
    recipe = recipe or standin_recipe(profile)
    figures = {}
    for part in parts:
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; parts: {PARTS}")
        folder = standin_dir(profile, part)
        resume = resume_generator and part == "generator" and _built(folder, part)
        if _built(folder, part) and not (rebuild or resume):
            continue
        tmp = folder.with_name(folder.name + ".building")
        if tmp.exists():
            shutil.rmtree(tmp)
        t0 = time.time()
        log(f"building {part} -> {folder}")
        torch.manual_seed(0)
        if part == "lm":
            figures[part] = pretrain_language_model(profile, recipe.lm, tmp, log=log)
        elif part == "generator":
            figures[part] = pretrain_generator(profile, recipe.generator, tmp, log=log,
                                               resume_from=folder if resume else None)
        else:
            figures[part] = pretrain_clip(profile, _FIELD[part], getattr(recipe, _FIELD[part]), tmp, log=log)
        if folder.exists():  # replaced only once its successor is complete: an interrupted build loses nothing
            shutil.rmtree(folder)
        tmp.rename(folder)  # a half-built folder never looks finished
        log(f"built {part} in {time.time() - t0:.0f}s")
    return figures


def ensure_standins(profile, rebuild: bool = False, log=print, recipe=None) -> dict:
    """Build whatever stand-in is missing (all of them with ``rebuild``); a no-op for ``paper``."""
    if not profile.uses_world:
        return {}
    return build_standins(profile, rebuild=rebuild, log=log, recipe=recipe)
