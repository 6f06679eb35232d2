"""GillModel: a frozen LM plus GILL's small trainable parts, and saving/loading only those parts.

Every size comes from the frozen parts: the LM's embedding width, the image encoder's pooled width, the
generator's text-encoder length and width. The frozen LM is kept in eval mode (no dropout) even while the
trainable parts train, as the published ``GILL.train`` does.

Hidden states: GILL reads "the last-layer hidden states" of OPT (``hidden_states[-1]`` of the causal LM, after
the final layer norm). Here they come from ``lm.base_model(...).last_hidden_state``, which for OPT (and Llama)
is the output after the final layer norm (and OPT's ``project_out`` where present): the same vectors that the
LM head multiplies, without materialising every layer's states.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import torch
from torch import nn

from .decision import DecisionHead
from .errors import CheckpointMismatchError
from .img_tokens import ImgTokens, add_img_tokens
from .mapper import GillMapper
from .prefix import VisualPrefix
from .retrieval import RetrievalHeads

CONFIG_FILE = "gill_config.json"
WEIGHTS_FILE = "trainable.safetensors"
FORMAT = "gill-lite/1"
# The TrainConfig fields that shape the trainable parts or the sequences they were trained to be read in (the rest
# is the recipe): a checkpoint records them and is rebuilt with them.
ARCH_FIELDS = ("n_visual_tokens", "n_img_tokens", "mapper_d_model", "mapper_heads", "mapper_encoder_layers",
               "mapper_decoder_layers", "mapper_ffn", "retrieval_dim", "bos_before_images")
# what a checkpoint saved before a field was an architecture field was built with
ARCH_DEFAULTS_OF_OLDER_CHECKPOINTS = {"bos_before_images": False}


def _cache_kwarg(model) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache``; accept both."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class GillModel(nn.Module):
    """The frozen LM (``self.lm``, an HF causal LM) with GILL's trainable parts:

    - ``prefix``: `VisualPrefix` (image pooled vector -> ``n_visual_tokens`` LM input embeddings);
    - ``img_tokens``: `ImgTokens` (the trainable ``[IMG0..7]`` rows);
    - ``mapper``: `GillMapper` (8 [IMG] states -> the generator's ``prompt_embeds``);
    - ``retrieval``: `RetrievalHeads` (+ learnable logit scale);
    - ``decision``: `DecisionHead` (generate=0 / retrieve=1) on the [IMG0] state and the top retrieval score,
      trained by the decision stage.

    It reads images through ``image_encoder``, the frozen encoder whose pooled vectors the visual prefix and the
    retrieval heads take (a frozen part, like ``lm``; the published model holds its visual encoder too). The
    generator, the output side, is not part of the model: a `gill_lite.inference.GillPipeline` holds it next to
    the model and the retrieval index.
    """

    def __init__(self, lm, tokenizer, image_hidden: int, gen_max_length: int, gen_text_width: int, train_cfg,
                 frozen_names: dict[str, str], image_encoder=None):
        super().__init__()
        self.lm, self.tokenizer, self.train_cfg = lm, tokenizer, train_cfg
        self.frozen_names = dict(frozen_names)
        self.image_encoder = image_encoder
        for p in self.lm.parameters():
            p.requires_grad_(False)
        self.lm.eval()
        self.img_ids = add_img_tokens(lm, tokenizer, train_cfg.n_img_tokens)
        self.lm_dim = lm.get_input_embeddings().embedding_dim
        self.image_hidden, self.gen_max_length, self.gen_text_width = image_hidden, gen_max_length, gen_text_width
        c = train_cfg
        torch.manual_seed(c.seed)  # the trainable parts' initialisation is part of the run's seed
        self.img_tokens = ImgTokens(lm, self.img_ids, seed=c.seed)
        self.prefix = VisualPrefix(image_hidden, self.lm_dim, c.n_visual_tokens)
        self.mapper = GillMapper(self.lm_dim, gen_text_width, gen_max_length, c.mapper_d_model, c.mapper_heads,
                                 c.mapper_encoder_layers, c.mapper_decoder_layers, c.mapper_ffn)
        self.retrieval = RetrievalHeads(self.lm_dim, image_hidden, c.retrieval_dim)
        self.decision = DecisionHead(self.lm_dim)
        self._cache_kw = _cache_kwarg(self.lm.base_model)
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if bos is None:
            raise ValueError("the tokenizer has neither a BOS nor an EOS token; GILL's inputs start with BOS")
        self.bos_id = bos
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else bos

    # ----------------------------------------------------------------------------------------------- building
    @classmethod
    def build(cls, frozen_parts, train_cfg) -> "GillModel":
        """A fresh GILL on ``frozen_parts`` (a `FrozenParts`: ``.lm``, ``.image_encoder``, ``.generator``)."""
        lm, enc, gen = frozen_parts.lm, frozen_parts.image_encoder, frozen_parts.generator
        names = {"lm": lm.config_name, "image_encoder": enc.config_name, "generator": gen.config_name}
        model = cls(lm.model, lm.tokenizer, enc.hidden_size, gen.max_length, gen.text_width, train_cfg, names, enc)
        # the trainable parts start beside the frozen LM (not on the CPU when the LM is on a GPU): `from_trainable`
        # and `train_stage` build through here, and `.device` (the prefix's) must be where the LM runs
        lm_device = next(lm.model.parameters()).device
        if lm_device.type != "meta":
            model.to(lm_device)
        return model

    def train(self, mode: bool = True):
        super().train(mode)
        self.lm.eval()  # the frozen LM never runs dropout
        return self

    @property
    def device(self) -> torch.device:
        return self.prefix.proj.weight.device

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"prefix": self.prefix, "img_tokens": self.img_tokens, "mapper": self.mapper,
                "retrieval": self.retrieval, "decision": self.decision}

    # ------------------------------------------------------------------------------------------ the frozen LM
    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings, with the trainable [IMG] rows substituted."""
        base = self.lm.get_input_embeddings()(input_ids)
        return self.img_tokens.embed(input_ids, base)

    def img_embeds(self) -> torch.Tensor:
        """The input embeddings of ``[IMG0..7]``: ``(n_img, lm_dim)`` (the mapper's second input)."""
        return self.img_tokens.rows

    def lm_forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                   cache=None, use_cache: bool = False, position_ids: torch.Tensor | None = None):
        """Run the frozen LM on embeddings. Returns ``(last-layer hidden states, logits, cache)``.

        Logits include the [IMG] columns from the trainable rows. ``cache`` is the KV cache of earlier calls.
        """
        kwargs = {self._cache_kw: cache, "use_cache": use_cache}
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        dtype = self.lm.get_input_embeddings().weight.dtype
        out = self.lm.base_model(inputs_embeds=inputs_embeds.to(dtype), attention_mask=attention_mask, **kwargs)
        hidden = out.last_hidden_state
        logits = self.img_tokens.logits(hidden, self.lm.get_output_embeddings()(hidden))
        new_cache = getattr(out, "cache", None) if self._cache_kw == "cache" else getattr(out, "past_key_values", None)
        return hidden, logits, new_cache

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens (BOS is added explicitly where the spec puts it)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def tokenize_batch(self, texts: list[str]) -> list[list[int]]:
        """`tokenize` for several texts in one tokenizer call."""
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []

    def map_states(self, img_states: torch.Tensor) -> torch.Tensor:
        """The mapper on ``(N, n_img, lm_dim)`` [IMG] states -> ``(N, max_length, text_width)`` prompt embeds."""
        return self.mapper(img_states.float(), self.img_embeds().float().unsqueeze(0))

    # ------------------------------------------------------------------------------------------ save / load
    def config_dict(self) -> dict:
        return {
            "format": FORMAT,
            "frozen": self.frozen_names,
            "sizes": {"lm_dim": self.lm_dim, "image_hidden": self.image_hidden, "gen_max_length": self.gen_max_length,
                      "gen_text_width": self.gen_text_width, "vocab": int(self.lm.get_input_embeddings().weight.shape[0])},
            "arch": {f: getattr(self.train_cfg, f) for f in ARCH_FIELDS},
            "img_token_ids": list(self.img_ids),
            "tied_embeddings": self.img_tokens.tied,
        }

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trainable tensors: prefix, [IMG] rows (and untied head rows), mapper, retrieval, decision."""
        state = {}
        for name, module in self.trainable_modules().items():
            for key, value in module.state_dict().items():
                state[f"{name}.{key}"] = value.detach().cpu()
        return state

    def save_trainable(self, directory, extra: dict | None = None) -> Path:
        """Write ``trainable.safetensors`` and ``gill_config.json`` (naming the frozen parts) into ``directory``."""
        from ..io import atomic_save_file, atomic_write_json

        directory = Path(directory)
        atomic_save_file(self.trainable_state_dict(), directory / WEIGHTS_FILE, metadata={"format": FORMAT})
        atomic_write_json(directory / CONFIG_FILE, {**self.config_dict(), **(extra or {})})
        return directory

    def load_trainable_state(self, state: dict[str, torch.Tensor], untrained_decision: bool = False) -> None:
        """Load a `trainable_state_dict` (strict: every key present, no extra key, the same shapes).

        ``untrained_decision``: the state is a training stage's, whose decision head no stage trains (the decision
        stage trains it and saves it apart, `model.decision`), so a head of another shape (the [IMG0]-only head of
        earlier builds) is only an initialisation: this model keeps its own, and says so. Finished stages of
        earlier builds stay loadable; a pipeline folder (`GillPipeline.from_pretrained`) stays strict."""
        expected = set(self.trainable_state_dict())
        if set(state) != expected:
            raise CheckpointMismatchError(
                f"trainable tensors differ: missing {sorted(expected - set(state))[:5]}, "
                f"unexpected {sorted(set(state) - expected)[:5]}")
        shapes = {k: tuple(v.shape) for k, v in self.trainable_state_dict().items()}
        wrong = [k for k, v in state.items() if tuple(v.shape) != shapes[k]]
        if any(not (untrained_decision and k.startswith("decision.")) for k in wrong):
            listed = [f"{k} {tuple(state[k].shape)} (this model: {shapes[k]})" for k in wrong]
            raise CheckpointMismatchError(f"trainable tensors of other shapes: {listed[:5]} (a checkpoint of "
                                          f"another architecture)")
        modules = self.trainable_modules()
        if wrong:
            print("this checkpoint's decision head has another shape (an [IMG0]-only head of an earlier build): kept "
                  "the model's untrained one; notebook 05 trains the decision head")
            modules = {k: m for k, m in modules.items() if k != "decision"}
        for name, module in modules.items():
            prefix = name + "."
            module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    @staticmethod
    def check_compatible(config: dict, frozen_parts) -> None:
        """Raise `CheckpointMismatchError` if ``config`` (a gill_config.json) was made for other frozen parts."""
        lm, enc, gen = frozen_parts.lm, frozen_parts.image_encoder, frozen_parts.generator
        have = {"lm": lm.config_name, "image_encoder": enc.config_name, "generator": gen.config_name}
        sizes = {"image_hidden": enc.hidden_size, "gen_max_length": gen.max_length, "gen_text_width": gen.text_width,
                 "lm_dim": lm.model.get_input_embeddings().embedding_dim}
        problems = [f"{k}: checkpoint {config.get('frozen', {}).get(k)!r} != given {v!r}"
                    for k, v in have.items() if config.get("frozen", {}).get(k) != v]
        problems += [f"{k}: checkpoint {config.get('sizes', {}).get(k)} != given {v}"
                     for k, v in sizes.items() if config.get("sizes", {}).get(k) != v]
        if config.get("format") != FORMAT:
            problems.append(f"format {config.get('format')!r} != {FORMAT!r}")
        if problems:
            raise CheckpointMismatchError(
                "this GILL checkpoint was made for other frozen parts; refusing to load it:\n  " + "\n  ".join(problems))

    @classmethod
    def from_trainable(cls, directory, frozen_parts, train_cfg=None, untrained_decision: bool = False) -> "GillModel":
        """Rebuild a GILL from `save_trainable` output on ``frozen_parts``; refuses mismatched frozen parts.
        ``untrained_decision``: see `load_trainable_state` (a training stage's checkpoint)."""
        from safetensors.torch import load_file

        from ..config import TrainConfig

        directory = Path(directory)
        if not (directory / CONFIG_FILE).exists():
            raise FileNotFoundError(f"no {CONFIG_FILE} in {directory}: not a GILL checkpoint")
        config = json.loads((directory / CONFIG_FILE).read_text())
        cls.check_compatible(config, frozen_parts)
        arch = {**ARCH_DEFAULTS_OF_OLDER_CHECKPOINTS, **config["arch"]}
        cfg = dataclasses.replace(train_cfg or TrainConfig(), **arch)
        model = cls.build(frozen_parts, cfg)
        if list(model.img_ids) != list(config["img_token_ids"]):
            raise CheckpointMismatchError(f"[IMG] token ids {model.img_ids} != checkpoint {config['img_token_ids']}")
        model.load_trainable_state(load_file(str(directory / WEIGHTS_FILE)), untrained_decision)
        return model
