"""Talk to GILL: interleaved text and images in, text plus a retrieved or generated image out.

The conversation is written in the paper's dialogue format: user turns ``Q: ...``, model turns ``A: ...``,
one per line, images where they were shown, and the prompt ends with ``A:``. Decoding is greedy (with a KV
cache, in `gill_lite.inference`); when the model emits ``[IMG0]``, all eight ``[IMG]`` tokens are appended,
the decision classifier reads the ``[IMG0]`` state, and ONLY the chosen path runs: retrieval from the index,
or the mapper + generator (the published code always ran Stable Diffusion, even when retrieval was shown).

    index, images, _ = world_index(model, profile)          # what it may retrieve (the training images)
    chat = GillChat(model, parts, index, images)
    reply = chat.ask("show me a small red circle at the top left")   # keeps the history
    reply.text, reply.images[0].source, reply.images[0].probabilities
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

SOURCES = ("retrieved", "generated")


class ChatImage(NamedTuple):
    """An image of a reply: the pixels, where it came from, and the decision's (generate, retrieve) probabilities."""

    image: np.ndarray
    source: str
    probabilities: dict[str, float]


@dataclass
class Reply:
    """The model's answer: its text and its images (at most one per ``[IMG]`` emission)."""

    text: str
    images: list[ChatImage] = field(default_factory=list)
    emitted_img: bool = False


def dialogue_prompt(history, answer_next: bool = True) -> list:
    """The model input for a conversation: strings are user turns (``Q: ...``; a string already starting with
    ``Q:`` is kept as it is), `Reply` items are model turns (``A: ...``), images stay where they are; turns are
    joined by newlines and, with ``answer_next``, the input ends with ``A:`` so the model answers next."""
    items: list = []
    text_lines: list[str] = []

    def flush():
        if text_lines:
            items.append("\n".join(text_lines))
            text_lines.clear()

    for item in history:
        if isinstance(item, Reply):
            text_lines.append(f"A: {item.text.strip()}".rstrip())
            if item.images:  # a shown image becomes context, as the user saw it
                flush()
                items.extend(ci.image for ci in item.images)
        elif isinstance(item, str):
            text = item.strip()
            text_lines.append(text if text.startswith("Q:") else f"Q: {text}")
        else:
            flush()
            items.append(np.asarray(item))
    if answer_next:
        text_lines.append("A:")
    flush()
    return items


class GillChat:
    """A conversation with GILL. ``respond(history)`` answers one conversation; ``ask(...)`` keeps one.

    model: a trained `GillModel` (with its decision head); parts: the `FrozenParts`; index: the
    `RetrievalIndex` of images it may show and index_images the images behind its ids (dict id -> image, or a
    sequence in index order). ``runner`` replaces them all (tests pass a fake; see `GillRunner`).
    """

    def __init__(self, model=None, parts=None, index=None, index_images=None, runner=None, max_new_tokens: int = 24,
                 seed: int = 0, force_image: bool = False):
        if runner is None:
            from gill_lite.evaluate.runner import GillRunner

            runner = GillRunner(model, parts, index, index_images)
        self.runner = runner
        self.max_new_tokens, self.seed, self.force_image = max_new_tokens, seed, force_image
        self.history: list = []

    def respond(self, history, force_image: bool | None = None) -> Reply:
        """Answer ``history`` (list of str | image | Reply). With ``force_image`` the ``[IMG]`` tokens are
        appended after the text even if the model did not emit them (as the VIST evaluation forces them)."""
        force_image = self.force_image if force_image is None else force_image
        prompt = dialogue_prompt(history)
        text, states = self.runner.decode(prompt, self.max_new_tokens)
        text = text.strip()
        reply = Reply(text=text, emitted_img=states is not None)
        if states is None and force_image:  # [IMG0..7] appended after the model's own words
            states = self.runner.img_states(_append_text(prompt, text))
        if states is not None:
            p_gen, p_ret = (float(p) for p in self.runner.decide(states))
            probabilities = {"generate": p_gen, "retrieve": p_ret}
            if p_ret > p_gen:  # only the chosen path runs
                image, _score = self.runner.retrieve(states, 1)[0]
                reply.images.append(ChatImage(np.asarray(image), "retrieved", probabilities))
            else:
                image = np.asarray(self.runner.generate([states], self.seed))[0]
                reply.images.append(ChatImage(image, "generated", probabilities))
        return reply

    def ask(self, *items, force_image: bool | None = None) -> Reply:
        """Add a user turn (texts and/or images) to the kept conversation and answer it."""
        if not items:
            raise ValueError("ask() needs at least one text or image")
        self.history.extend(items)
        reply = self.respond(self.history, force_image)
        self.history.append(reply)
        return reply

    def reset(self) -> None:
        self.history.clear()


def transcript(history) -> str:
    """A conversation as text, images shown as ``<image>`` (for printing)."""
    return "\n".join(x if isinstance(x, str) else "<image>" for x in dialogue_prompt(history, answer_next=False))


def _append_text(prompt: list, text: str) -> list:
    """``prompt`` with the model's own words added to its final ``A:`` line."""
    if not text:
        return list(prompt)
    if prompt and isinstance(prompt[-1], str):
        return prompt[:-1] + [f"{prompt[-1]} {text}"]
    return list(prompt) + [text]


def world_index(model, profile, split: str = "train", n: int | None = None):
    """A `RetrievalIndex` over ShapeStories corpus images (the paper retrieves from its training images,
    CC3M): returns (index, images uint8 (N, H, W, 3), captions)."""
    from gill_lite.inference import RetrievalIndex
    from gill_lite.world.corpus import make_split, render_images, split_sizes

    w = profile.world
    n = split_sizes(w)[split] if n is None else n
    examples = make_split(split, n, w.seed, w.heldout_fraction, w.image_size)
    images = render_images(examples, w.image_size)
    index = RetrievalIndex.build(model, images, [e.id for e in examples])
    return index, images, [e.caption for e in examples]
