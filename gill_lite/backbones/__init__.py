"""The frozen parts of GILL: language model, image encoder, image generator, and the evaluation CLIP.

    from gill_lite.backbones import load_frozen_parts
    parts = load_frozen_parts(profile)   # parts.lm, parts.image_encoder, parts.generator, parts.eval_clip
"""
from .build import build_standins, ensure_standins, standin_dir
from .frozen import (
    DeviceMismatchError,
    FrozenParts,
    check_frozen_devices,
    default_device,
    load_frozen_parts,
)
from .generator import ImageGenerator, load_generator
from .image_encoder import ImageEncoder, load_image_encoder
from .language_model import LanguageModel, load_language_model

__all__ = [
    "FrozenParts", "load_frozen_parts", "check_frozen_devices", "default_device", "DeviceMismatchError", "ensure_standins", "build_standins", "standin_dir",
    "LanguageModel", "load_language_model", "ImageEncoder", "load_image_encoder",
    "ImageGenerator", "load_generator",
]
