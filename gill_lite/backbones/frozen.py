"""The four frozen parts GILL is built around, loaded together.

``tiny`` loads the committed stand-ins under ``models/tiny/`` (no training); ``ci`` builds small ones into
``<run_dir>/models/`` the first time (seconds), then loads them; ``paper`` loads hub ids (OPT-6.7B, ViT-L/14,
Stable Diffusion v1.5).

Device placement has one owner: `FrozenParts.to` moves all four (every entry point calls it: training,
evaluation, the decision stage), and `check_frozen_devices` refuses a part left elsewhere than the GILL that
reads it (at paper scale a part left on the CPU would make ViT-L/14, SD v1.5 or OPT-6.7B run there for hours
rather than fail).
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

    def to(self, device) -> "FrozenParts":
        """Move every frozen part (LM, image encoder, generator pipeline, eval CLIP) to ``device``; returns self."""
        self.lm.model.to(device)
        self.image_encoder.model.to(device)
        self.generator.pipeline.to(device)
        self.eval_clip.model.to(device)
        return self

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


class DeviceMismatchError(RuntimeError):
    """A frozen part sits on another device than the GILL model that reads it."""


def _modules(parts) -> dict:
    """The torch modules behind each frozen part present on ``parts`` (fakes may lack some)."""
    out = {}
    for name, attr in (("lm", "model"), ("image_encoder", "model"), ("eval_clip", "model")):
        part = getattr(parts, name, None)
        if part is not None and hasattr(getattr(part, attr, None), "parameters"):
            out[name] = getattr(part, attr)
    pipe = getattr(getattr(parts, "generator", None), "pipeline", None)
    for sub in ("text_encoder", "unet", "vae"):
        module = getattr(pipe, sub, None)
        if hasattr(module, "parameters"):
            out[f"generator.{sub}"] = module
    return out


def _same_device(a, b) -> bool:
    import torch

    a, b = torch.device(a), torch.device(b)
    if a.type != b.type:
        return False
    if a.type == "cuda":  # "cuda" means the current device
        current = torch.cuda.current_device() if torch.cuda.is_available() else 0
        return (current if a.index is None else a.index) == (current if b.index is None else b.index)
    return True


def check_frozen_devices(parts, model) -> None:
    """Raise `DeviceMismatchError` naming every frozen part with a parameter off ``model``'s device.

    ``model`` is a `GillModel` (or anything with ``.device``). Parts a fake does not have are not checked."""
    want = model.device
    wrong = {}
    for name, module in _modules(parts).items():
        devices = {str(p.device) for p in module.parameters()}
        bad = sorted(d for d in devices if not _same_device(d, want))
        if bad:
            wrong[name] = bad
    if wrong:
        raise DeviceMismatchError(
            f"frozen parts off the model's device {want}: "
            + "; ".join(f"{k} on {', '.join(v)}" for k, v in wrong.items())
            + ". Move them with FrozenParts.to(device) (gill_lite.backbones.frozen)")


def default_device():
    """This process's accelerator (``accelerate``'s per-process device: ``cuda:<local rank>`` under
    ``accelerate launch``, the GPU on one, else the CPU): where the entry points put the frozen parts."""
    from accelerate import PartialState

    return PartialState().device
