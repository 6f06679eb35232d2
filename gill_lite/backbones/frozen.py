"""The four frozen parts GILL is built around, loaded together.

``tiny`` loads the committed stand-ins under ``models/tiny/`` (no training); ``ci`` builds small ones into
``<run_dir>/models/`` the first time (seconds), then loads them; ``paper`` loads hub ids (OPT-6.7B, ViT-L/14,
Stable Diffusion v1.5).
"""
from __future__ import annotations

from dataclasses import dataclass

from .generator import ImageGenerator, load_generator
from .image_encoder import ImageEncoder, load_image_encoder
from .language_model import LanguageModel, load_language_model


@dataclass
class FrozenParts:
    lm: LanguageModel
    image_encoder: ImageEncoder
    generator: ImageGenerator
    eval_clip: ImageEncoder

    @property
    def config_names(self) -> dict[str, str]:
        """What a GILL checkpoint records to refuse mismatched frozen parts."""
        return {"lm": self.lm.config_name, "image_encoder": self.image_encoder.config_name,
                "generator": self.generator.config_name, "eval_clip": self.eval_clip.config_name}


def load_frozen_parts(profile, build_missing: bool = True, device: str | None = None) -> FrozenParts:
    """Load all frozen parts of ``profile``; with ``build_missing``, first build missing stand-ins
    (`ensure_standins`; for ``tiny`` the committed folders are there, so nothing trains)."""
    if build_missing and profile.uses_world:
        from .build import ensure_standins

        ensure_standins(profile)
    return FrozenParts(
        lm=load_language_model(profile, device=device),
        image_encoder=load_image_encoder(profile, "image_encoder", device=device),
        generator=load_generator(profile, device=device),
        eval_clip=load_image_encoder(profile, "eval_clip", device=device),
    )
