"""GILL seen through the few calls the evaluation and the chat need (see `gill_lite.evaluate.vist`).

`GillRunner` wraps a trained `GillModel`, its frozen parts and (for the chat) a `RetrievalIndex` with the images
it indexes, and forwards to `gill_lite.inference`; the protocols and the chat never touch the model directly,
so their tests pass fakes.
"""
from __future__ import annotations

import numpy as np


class GillRunner:
    """The evaluation's and the chat's calls, on one GILL.

    index / index_images: a `gill_lite.inference.RetrievalIndex` and the images behind its ids (a mapping
    id -> image, or a sequence in index order); only the chat's `retrieve` needs them.
    """

    def __init__(self, model, parts, index=None, index_images=None):
        self.model, self.parts, self.index = model, parts, index
        if index_images is not None and not isinstance(index_images, dict):
            index_images = dict(zip(index.ids, index_images))
        self.index_images_by_id = index_images

    # ------------------------------------------------------------------------------------ VIST protocols
    def img_states(self, context):
        from gill_lite.inference import img_states

        return img_states(self.model, context).states

    def img_states_batch(self, contexts):
        from gill_lite.inference import img_states_batch

        return img_states_batch(self.model, contexts).states

    def generate(self, states, seed: int) -> np.ndarray:
        from gill_lite.inference import generate_images

        return np.asarray(generate_images(self.model, self.parts.generator, _stack(states), seed))

    def retrieval_queries(self, states):
        from gill_lite.inference import text_embeddings

        return text_embeddings(self.model, _stack(states))

    def index_images(self, images):
        import torch

        from gill_lite.inference import encode_images

        self.model.eval()
        with torch.no_grad():
            return self.model.retrieval.embed_image(encode_images(self.model, images)).cpu()

    def generate_from_text(self, prompts, seed: int) -> np.ndarray:
        # the baseline's prompts are truncated by the generator's tokenizer on purpose (as SD's 77 tokens were);
        # silence the per-batch truncation warnings that would otherwise list every prompt
        with _quiet_truncation():
            return np.asarray(self.parts.generator.generate_from_text(list(prompts), seed=seed))

    # ---------------------------------------------------------------------------------------------- chat
    def decode(self, context, max_new_tokens: int):
        """Greedy answer to a dialogue prompt: (text, [IMG] states ``(1, 8, d)`` if the model emitted [IMG0]
        else None). Stops at EOS, at the next ``Q`` turn, or after the eight [IMG] tokens."""
        from gill_lite.inference import generate_text

        tok = self.model.tokenizer
        # EOS, the next turn's "q" (word-level stand-ins drop newlines) and a newline (BPE tokenizers keep it)
        stops = [tok.eos_token_id] + self.model.tokenize("q")[:1] + self.model.tokenize("\n")[:1]
        result = generate_text(self.model, context, max_new_tokens, [s for s in stops if s is not None], stop_at_img=True)
        text = result.text
        cut = _next_turn(text)
        states = result.img_states[0].unsqueeze(0) if result.img_states else None
        return text[:cut].strip(), states

    def decide(self, states):
        from gill_lite.inference import decide

        p = decide(self.model, _stack(states)[:1])
        return p["generate"], p["retrieve"]

    def retrieve(self, states, k: int):
        from gill_lite.inference import retrieve

        if self.index is None or self.index_images_by_id is None:
            raise ValueError("this runner has no retrieval index; pass index= and index_images=")
        return [(self.index_images_by_id[i], s) for i, s in retrieve(self.model, self.index, _stack(states)[:1], k)[0]]


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


def _next_turn(text: str) -> int:
    """Where a decoded answer runs into the next ``Q:`` turn (word-level tokenizers decode it as ``q :``)."""
    lowered = text.lower()
    cuts = [i for i in (lowered.find("q :"), lowered.find("q:")) if i >= 0]
    return min(cuts) if cuts else len(text)


def _stack(states):
    """Per-context states ``(1, 8, d)``/``(8, d)``, a list of them, or `ImgStates`, as one ``(N, 8, d)`` tensor."""
    import torch

    states = getattr(states, "states", states)
    if isinstance(states, torch.Tensor):
        return states if states.dim() == 3 else states.unsqueeze(0)
    return torch.cat([_stack(s) for s in states])


def load_runner(profile, checkpoint=None, with_decision: bool = True):
    """(GillRunner, FrozenParts) for a profile: GILL's trainable parts from ``checkpoint`` (a folder with
    gill_config.json + trainable.safetensors, refused if made for other frozen parts) or else the profile's
    trained GILL (`gill_lite.train.load_gill`, which trains what is missing); plus its decision head if trained."""
    from gill_lite.backbones import check_frozen_devices, default_device, load_frozen_parts

    # one owner of placement: every frozen part on this process's accelerator (else OPT-6.7B and SD v1.5 would
    # evaluate on the CPU); GillModel.build puts the trainable parts beside the LM
    parts = load_frozen_parts(profile).to(default_device())
    if checkpoint is not None:
        from gill_lite.model import GillModel

        model = GillModel.from_trainable(checkpoint, parts, profile.train)
    else:
        from gill_lite.train import load_gill

        model = load_gill(profile, parts)
    if with_decision:
        try:
            from gill_lite.decision.classifier import load_trained_decision

            load_trained_decision(profile, model)
        except (ImportError, RuntimeError, KeyError) as e:  # the evaluation itself does not need it
            print(f"decision head not loaded ({e}); the VIST protocols do not use it")
    model.eval()
    check_frozen_devices(parts, model)
    return GillRunner(model, parts), parts
