"""`GillPipeline`: GILL's trainable parts, its frozen parts and a retrieval index, in one object.

    pipe = GillPipeline.for_profile(profile)             # the profile's trained GILL (trains what is missing)
    pipe = GillPipeline.from_pretrained(folder)          # a saved pipeline, or a training stage's folder
    states = pipe.img_states("a small red circle.")      # (1, 8, lm_dim): the [IMG] states after a context
    pipe.generate(states, seed=0); pipe.retrieve(states, k=5); pipe.decide(states); pipe.caption(images)
    pipe.show_image(states)                              # decide, then run ONLY the chosen path
    pipe.respond(["Q: show me a red circle", "A:"])      # text, and the image the decision chose if [IMG] came
    pipe.save_pretrained(folder); pipe.to("cuda")

As a diffusers pipeline does, it wires parts together: the computations are `gill_lite.model.functional`'s, and
its one rule of its own is the decision's (`show_image`). The VIST evaluation, the decision collection, the chat
and its widget take a pipeline; their tests pass fakes with the same methods.

A saved folder (`save_pretrained`) holds safetensors and JSON only::

    gill_config.json              GILL's sizes, the frozen parts it was trained on (their config names) and, under
                                  "pipeline", the profile and the frozen parts' settings to load them with
    trainable.safetensors         every trainable tensor, the decision head's included
    retrieval_index.safetensors   the index's ids and embeddings (when the pipeline has an index)
    retrieval_images.safetensors  the images behind them, uint8 (when the index holds them as an array)

A training stage's folder (`gill_lite.train.loop.stage_dir`) is such a folder without an index (its
gill_config.json names the profile it was trained for), so `from_pretrained` loads a finished stage as it is.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .model import functional as F
from .model.functional import DecodeResult, ImgStates, RetrievalIndex  # noqa: F401  (what callers hold)

PIPELINE_FORMAT = "gill-lite-pipeline/1"
INDEX_FILE = "retrieval_index.safetensors"
INDEX_IMAGES_FILE = "retrieval_images.safetensors"
FROZEN_FIELDS = ("lm", "image_encoder", "generator", "eval_clip")  # the profile parts that are frozen parts


@dataclass
class ShownImage:
    """The one image shown for a set of [IMG] states: ``choice`` ("generate" or "retrieve"), the decision's
    ``probabilities`` ``{"generate": p, "retrieve": q}``, the uint8 ``image``, and ``retrieved_id`` (None when
    generated)."""

    choice: str
    probabilities: dict[str, float]
    image: np.ndarray
    retrieved_id: str | None = None

    @property
    def source(self) -> str:
        """ "generated" or "retrieved" (how a reply names it)."""
        return "retrieved" if self.choice == "retrieve" else "generated"


@dataclass
class Response:
    """An answer to a context: its ``text``, the image shown (None when no [IMG] states came), and whether the
    model emitted ``[IMG0]`` itself (``emitted_img``) rather than having the [IMG] tokens forced."""

    text: str
    image: ShownImage | None = None
    emitted_img: bool = False


class GillPipeline:
    """GILL in one object: ``model`` (a `GillModel`: the trainable parts on the frozen LM and image encoder),
    ``parts`` (the `FrozenParts`: LM, image encoder, generator, evaluation CLIP), ``index`` (a `RetrievalIndex`
    or None) and ``profile`` (the `Profile` it was made for, or None).

    ``[IMG]`` states are ``(N, 8, lm_dim)`` tensors; a method taking states also takes a list of per-context
    ``(1, 8, d)`` / ``(8, d)`` tensors, or `ImgStates`.
    """

    def __init__(self, model, parts, index: RetrievalIndex | None = None, profile=None):
        self.model, self.parts, self.index, self.profile = model, parts, index, profile

    def __repr__(self) -> str:
        index = f"{len(self.index)} images" if self.index is not None else "none"
        names = getattr(self.model, "frozen_names", {})
        return f"GillPipeline(profile={getattr(self.profile, 'name', None)!r}, frozen={names}, index={index})"

    # ------------------------------------------------------------------------------------------- building
    @classmethod
    def for_profile(cls, profile, checkpoint=None, with_decision: bool = True, index: RetrievalIndex | None = None,
                    device=None, train_missing: bool = True) -> "GillPipeline":
        """The profile's GILL: its frozen parts on ``device`` (default: `gill_lite.backbones.default_device`),
        the trainable parts from ``checkpoint`` (a saved folder, refused if made for other frozen parts) or else
        the profile's trained GILL (`gill_lite.train.load_gill`, which trains what is missing unless
        ``train_missing=False``: then a missing stage raises `FileNotFoundError`), and the profile's trained
        decision head when there is one (notebook 05 trains it)."""
        from .backbones import check_frozen_devices, default_device, load_frozen_parts

        # one owner of placement: every frozen part on this process's accelerator (else OPT-6.7B and SD v1.5 would
        # run on the CPU); GillModel.build puts the trainable parts beside the LM
        parts = load_frozen_parts(profile).to(device or default_device())
        if checkpoint is not None:
            pipe = cls.from_pretrained(checkpoint, frozen_parts=parts, profile=profile, index=index)
        else:
            from .train import load_gill

            pipe = cls(load_gill(profile, parts, train_missing=train_missing), parts, index, profile)
        if with_decision:
            from .model.decision import load_trained_decision

            try:
                load_trained_decision(profile, pipe.model)
            except (RuntimeError, KeyError) as e:  # a head of other sizes: the VIST protocols do not need it
                print(f"decision head not loaded ({e}); the VIST protocols do not use it")
        pipe.model.eval()
        check_frozen_devices(parts, pipe.model)
        return pipe

    @classmethod
    def from_pretrained(cls, folder, frozen_parts=None, profile=None, decision_head=None,
                        index: RetrievalIndex | None = None, device=None) -> "GillPipeline":
        """Load a `save_pretrained` folder, or a training stage's folder.

        The frozen parts are ``frozen_parts`` if given, else loaded (`load_frozen_parts`, on the CPU) for
        ``profile`` (a `Profile` or a name), else for the profile the folder names, with the frozen parts'
        settings it recorded. A folder made for other frozen parts is refused with `CheckpointMismatchError`. ``decision_head``: a
        ``decision_head.safetensors`` to load over the folder's head; ``index``: replaces the folder's.
        ``device``: where to move everything (default: where the frozen parts were loaded, the CPU).
        """
        from .model import GillModel
        from .model.gill import CONFIG_FILE

        folder = Path(folder)
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"no {CONFIG_FILE} in {folder}: not a GillPipeline or GILL checkpoint folder")
        config = json.loads(config_path.read_text())
        meta = config.get("pipeline", {})
        if meta and meta.get("format") != PIPELINE_FORMAT:
            raise ValueError(f"{folder} holds pipeline format {meta.get('format')!r}; this code reads {PIPELINE_FORMAT!r}")
        if profile is None or isinstance(profile, str):
            profile = _saved_profile(config, folder, profile, required=frozen_parts is None)
        if frozen_parts is None:
            from .backbones import load_frozen_parts

            frozen_parts = load_frozen_parts(profile)
        # refuses other frozen parts (names, sizes) before anything is built on them
        model = GillModel.from_trainable(folder, frozen_parts, profile.train if profile is not None else None)
        if decision_head is not None:
            from .model.decision import load_decision_head

            load_decision_head(model, decision_head)
        if index is None and (folder / INDEX_FILE).is_file():
            index = RetrievalIndex.load(folder / INDEX_FILE)
            if (folder / INDEX_IMAGES_FILE).is_file():
                from safetensors.torch import load_file

                index.images = load_file(str(folder / INDEX_IMAGES_FILE))["images"].numpy()
        pipe = cls(model.eval(), frozen_parts, index, profile)
        return pipe.to(device) if device is not None else pipe

    def save_pretrained(self, folder) -> Path:
        """Write the pipeline into ``folder`` (see the module docstring): safetensors and JSON only. An index
        whose images are read on demand (a dataset) is saved without them."""
        from .io import atomic_save_file

        folder = Path(folder)
        images = self.index.images if self.index is not None else None
        keep_images = images is not None and not callable(images)
        meta = {"format": PIPELINE_FORMAT, "profile": getattr(self.profile, "name", None),
                "frozen_configs": _frozen_configs(self.profile),
                "index": INDEX_FILE if self.index is not None else None,
                "index_images": INDEX_IMAGES_FILE if keep_images else None}
        self.model.save_trainable(folder, extra={"pipeline": meta})
        for name, wanted in ((INDEX_FILE, self.index is not None), (INDEX_IMAGES_FILE, keep_images)):
            if not wanted:  # a stale file from an earlier save would come back with the next load
                (folder / name).unlink(missing_ok=True)
        if self.index is not None:
            self.index.save(folder / INDEX_FILE)
        if keep_images:
            array = np.ascontiguousarray(np.asarray(images, dtype=np.uint8))
            atomic_save_file({"images": torch.from_numpy(array)}, folder / INDEX_IMAGES_FILE)
        return folder

    def with_index(self, index: RetrievalIndex | None) -> "GillPipeline":
        """The same pipeline (the same parts, not copies) with another retrieval index."""
        return type(self)(self.model, self.parts, index, self.profile)

    def to(self, device) -> "GillPipeline":
        """Move the frozen parts and the trainable parts to ``device``; returns self. The index stays on the CPU,
        where its scores are compared."""
        if hasattr(self.parts, "to"):
            self.parts.to(device)
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        """Where the trainable parts (and so the LM beside them) run."""
        return self.model.device

    @property
    def generator(self):
        """The frozen generator (`gill_lite.backbones.ImageGenerator`)."""
        return self.parts.generator

    # --------------------------------------------------------------------------------------- text and [IMG]
    def caption(self, images, max_new_tokens: int = 24) -> list[str]:
        """Greedy captions (first sentence) of uint8 images."""
        return F.caption_images(self.model, images, max_new_tokens)

    def decode(self, context, max_new_tokens: int = 32, stop_words=()) -> tuple[str, torch.Tensor | None]:
        """Greedy continuation of a context: ``(text, [IMG] states (1, 8, d) if the model emitted [IMG0] else
        None)``. Stops at EOS, at the first token of any of ``stop_words``, or after the eight [IMG] tokens."""
        stops = [self.model.tokenizer.eos_token_id] + [t for w in stop_words for t in self.model.tokenize(w)[:1]]
        result = F.generate_text(self.model, context, max_new_tokens, [s for s in stops if s is not None],
                                 stop_at_img=True)
        return result.text, (result.img_states[0].unsqueeze(0) if result.img_states else None)

    def img_states(self, context) -> torch.Tensor:
        """The 8 [IMG] states after one context (str, image, or a list of both), [IMG0..7] forced: ``(1, 8, d)``."""
        return F.img_states(self.model, context).states

    def img_states_batch(self, contexts) -> torch.Tensor:
        """`img_states` for several contexts at once: ``(N, 8, d)`` (padding changes nothing)."""
        return F.img_states_batch(self.model, list(contexts)).states

    # ---------------------------------------------------------------------------------------- generation
    def generate(self, states, seed: int = 0) -> np.ndarray:
        """Images from [IMG] states, through the mapper into the generator: uint8 ``(N, H, W, 3)``; image ``k`` of
        a call is seeded ``seed + k``."""
        return np.asarray(F.generate_images(self.model, self.generator, _stack(states), seed))

    def generate_from_text(self, prompts, seed: int = 0) -> np.ndarray:
        """The generator alone on text prompts (the SD baseline): uint8 ``(N, H, W, 3)``."""
        # the baseline's prompts are truncated by the generator's tokenizer on purpose (as SD's 77 tokens were);
        # silence the per-batch truncation warnings that would otherwise list every prompt
        with _quiet_truncation():
            return np.asarray(self.generator.generate_from_text(list(prompts), seed=seed))

    # ----------------------------------------------------------------------------------------- retrieval
    def retrieval_queries(self, states) -> torch.Tensor:
        """The retrieval head's unit-norm embeddings of the [IMG0] states: ``(N, retrieval_dim)``."""
        return F.text_embeddings(self.model, _stack(states))

    @torch.no_grad()
    def embed_images(self, images) -> torch.Tensor:
        """The retrieval head's unit-norm embeddings of uint8 images: ``(N, retrieval_dim)`` (what an index holds)."""
        self.model.eval()
        return self.model.retrieval.embed_image(F.encode_images(self.model, images)).cpu()

    def build_index(self, images, ids, batch_size: int = 256) -> RetrievalIndex:
        """A `RetrievalIndex` of uint8 images (kept in it, to be shown); assign it to ``pipe.index`` to use it."""
        return RetrievalIndex.build(self.model, images, ids, batch_size)

    def retrieve(self, states, k: int = 1, exclude=None) -> list[list[tuple[str, float]]]:
        """Top-``k`` ``(id, cosine score)`` of the index for each query's [IMG0] state; ``exclude``: per query, ids
        to skip."""
        return F.retrieve(self.model, self._index(), _stack(states), k, exclude)

    def index_images(self, ids) -> np.ndarray:
        """The images behind index ids: uint8 ``(len(ids), H, W, 3)``."""
        return self._index().images_of(ids)

    def _index(self) -> RetrievalIndex:
        if self.index is None:
            raise ValueError("this pipeline has no retrieval index: set pipe.index (pipe.build_index(images, ids), "
                             "or index= when loading)")
        return self.index

    # ----------------------------------------------------------------------------------------- decision
    def decide(self, states, top_cosine: float | None = None) -> dict[str, float]:
        """The decision head on ONE query's [IMG0] state and its top retrieval score over the index:
        ``{"generate": p, "retrieve": q}``. ``top_cosine``: that score, when `retrieve` already returned it."""
        states = _stack(states)
        if len(states) != 1:
            raise ValueError(f"decide takes one query's [IMG] states, got {len(states)}")
        if top_cosine is not None:
            return F.decide(self.model, states, top_cosines=[top_cosine])
        return F.decide(self.model, states, self._index() if self.model.decision.retrieval_score else self.index)

    def decision_inputs(self, states, top_cosines) -> torch.Tensor:
        """What the decision head reads for a batch of queries (`gill_lite.model.functional.decision_inputs`):
        their [IMG0] states and ``top_cosines`` (the top-1 scores `retrieve` returned), as ``(B, features)``."""
        return F.decision_inputs(self.model, _stack(states), top_cosines)

    def show_image(self, states, seed: int = 0) -> ShownImage:
        """Decide, then run ONLY the chosen path for one query's [IMG] states: the top-1 retrieval from the
        index, or the mapper + generator at ``seed``. (The published code always ran Stable Diffusion, then
        threw the image away when retrieval won.) It needs an index even when it generates: the decision head
        reads the top retrieval score, and the index is scored once for both."""
        retrieved_id, score = self.retrieve(states, k=1)[0][0]
        probabilities = self.decide(states, top_cosine=score)
        if probabilities["retrieve"] > probabilities["generate"]:
            return ShownImage("retrieve", probabilities, np.asarray(self.index_images([retrieved_id])[0]), retrieved_id)
        return ShownImage("generate", probabilities, np.asarray(self.generate(states, seed))[0])

    def respond(self, context, max_new_tokens: int = 32, seed: int = 0, force_image: bool = False, stop_words=(),
                trim=None) -> Response:
        """Answer an interleaved context: greedy text, and when [IMG] states come (the model emitted ``[IMG0]``,
        or ``force_image`` appends ``[IMG0..7]`` after its words), the one image `show_image` chooses.

        ``stop_words``: decoding also stops at their first tokens; ``trim(text) -> text``: the part of the decoded
        text that is the answer (the chat cuts the next turn off), read before the [IMG] tokens are forced."""
        text, states = self.decode(context, max_new_tokens, stop_words)
        text = trim(text) if trim is not None else text
        response = Response(text, emitted_img=states is not None)
        if states is None and force_image:  # [IMG0..7] appended after the model's own words
            states = self.img_states(_after(context, text))
        if states is not None:
            response.image = self.show_image(states, seed)
        return response

    # ------------------------------------------------------------------------------ what a conversation needs
    @property
    def max_positions(self) -> int | None:
        """The LM's window in positions (None when unknown)."""
        config = getattr(getattr(self.model, "lm", None), "config", None)
        value = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        return int(value) if value else None

    @property
    def image_size(self) -> int | None:
        """The image encoder's input size (None when unknown)."""
        return getattr(getattr(self.parts, "image_encoder", None), "image_size", None)

    def count_positions(self, context) -> int:
        """How many LM positions a context takes (`gill_lite.model.functional.context_length`)."""
        return F.context_length(self.model, context)


def _after(context, text: str) -> list:
    """``context`` with the model's own words added to its last text (or after its last image)."""
    context = [context] if isinstance(context, str) or F.is_image(context) else list(context)
    if not text:
        return context
    if context and isinstance(context[-1], str):
        return context[:-1] + [f"{context[-1]} {text}"]
    return context + [text]


def _stack(states) -> torch.Tensor:
    """Per-context states ``(1, 8, d)``/``(8, d)``, a list of them, or `ImgStates`, as one ``(N, 8, d)`` tensor."""
    states = getattr(states, "states", states)
    if isinstance(states, torch.Tensor):
        return states if states.dim() == 3 else states.unsqueeze(0)
    return torch.cat([_stack(s) for s in states])


class _quiet_truncation:
    """Lower the transformers/diffusers log level to errors for the duration of a block."""

    def __enter__(self):
        import logging

        self.loggers = [logging.getLogger(n) for n in ("transformers", "diffusers")]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for lg, level in zip(self.loggers, self.levels):
            lg.setLevel(level)


def _frozen_configs(profile) -> dict | None:
    """The profile's settings of each frozen part (where to load it from, how to run it), as JSON."""
    if profile is None:
        return None
    return {f: dataclasses.asdict(getattr(profile, f)) for f in FROZEN_FIELDS}


def _saved_profile(config: dict, folder: Path, name: str | None, required: bool):
    """The profile named ``name``, else the one the folder records, with the frozen parts' settings it recorded
    (JSON lists back to the tuples the dataclasses hold)."""
    from .config import get_profile

    if name is not None:
        return get_profile(name)
    meta = config.get("pipeline", {})
    name = meta.get("profile") or config.get("run", {}).get("profile")
    if name is None:
        if required:
            raise ValueError(f"{folder} names no profile to load its frozen parts for; pass frozen_parts= or profile=")
        return None
    base = get_profile(name)
    overrides = {}
    for part, values in (meta.get("frozen_configs") or {}).items():
        current = getattr(base, part)
        overrides[part] = {k: tuple(v) if isinstance(getattr(current, k, None), tuple) and isinstance(v, list) else v
                           for k, v in values.items() if k in {f.name for f in dataclasses.fields(current)}}
    return get_profile(name, **overrides)
