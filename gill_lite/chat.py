"""Talk to GILL: interleaved text and images in, text plus a retrieved or generated image out.

The conversation is written in the paper's dialogue format: user turns ``Q: ...``, model turns ``A: ...``,
one per line, images where they were shown, and the prompt ends with ``A:``. The answer is
`gill_lite.inference.GillPipeline.respond`'s: greedy decoding (with a KV cache); when the model emits ``[IMG0]``,
all eight ``[IMG]`` tokens are appended, the decision classifier reads the ``[IMG0]`` state and the top retrieval
score, and ONLY the chosen path runs: retrieval from the pipeline's index, or the mapper + generator (the published code always ran Stable
Diffusion, even when retrieval was shown).

    pipe = GillPipeline.for_profile(profile)
    pipe.index, _ = world_index(pipe, profile)              # what it may retrieve (the training images)
    chat = GillChat(pipe)
    reply = chat.ask("show me a small red circle at the top left")   # keeps the history
    reply.text, reply.images[0].source, reply.images[0].probabilities

`GillChat.ask` keeps the conversation inside the LM's position window (the oldest turns are dropped, and a
message too long on its own loses its first words), converts every image to the encoder's RGB input size, and
leaves the history as it was when a turn fails.
"""
from __future__ import annotations

import re
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
    """The model's answer: its text and its images (at most one per ``[IMG]`` emission).

    ``dropped_turns`` and ``shortened`` say what `GillChat.ask` cut to keep the conversation inside the LM's
    window for this answer: how many of the oldest turns, and whether the user's message lost its first words.
    """

    text: str
    images: list[ChatImage] = field(default_factory=list)
    emitted_img: bool = False
    dropped_turns: int = 0
    shortened: bool = False


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


def encoder_image(image, size: int | None = None) -> np.ndarray:
    """Any image (PIL, or an array: grey, RGB, RGBA, uint8 or floats in [0, 1]) as uint8 RGB ``(size, size, 3)``.

    Transparency is laid on black (the world's background). Resizing follows the encoder's own preprocessing
    (shortest side to ``size``, then the centre square); the encoder stacks a batch, so every image of a
    conversation must reach it at the same size. ``size=None`` keeps the size.
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        pil = image
    else:
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
            raise ValueError(f"an image is (H, W), (H, W, 3) or (H, W, 4), not {arr.shape}")
        if arr.dtype != np.uint8:
            scale = 255.0 if np.issubdtype(arr.dtype, np.floating) and arr.size and arr.max() <= 1.0 else 1.0
            arr = np.clip(np.rint(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
        pil = Image.fromarray(arr)
    if pil.mode in ("RGBA", "LA", "PA") or (pil.mode == "P" and "transparency" in pil.info):
        rgba = pil.convert("RGBA")
        pil = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    pil = pil.convert("RGB")
    if size and pil.size != (size, size):
        w, h = pil.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        pil = pil.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        pil = pil.crop((left, top, left + size, top + size))
    return np.asarray(pil, dtype=np.uint8)


# decoding stops at EOS, at the next turn's "q" (word-level stand-ins drop newlines) and at a newline (BPE
# tokenizers keep it)
DIALOGUE_STOPS = ("q", "\n")


class GillChat:
    """A conversation with GILL. ``respond(history)`` answers one conversation; ``ask(...)`` keeps one.

    pipe: a `gill_lite.inference.GillPipeline` (its decision head trained, its index holding the images it may
    show); tests pass a fake with the same methods. The LM's window (``max_positions``), the encoder's input size
    (``image_size``) and how a prompt is counted (``count_positions(prompt) -> int``) come from the pipeline;
    pass them for one that does not know them (without them the history is not trimmed and images are not
    resized).
    """

    def __init__(self, pipe, max_new_tokens: int = 24, seed: int = 0, force_image: bool = False,
                 max_positions: int | None = None, image_size: int | None = None, count_positions=None):
        self.pipe = pipe
        self.max_new_tokens, self.seed, self.force_image = max_new_tokens, seed, force_image
        self.max_positions = max_positions or getattr(pipe, "max_positions", None)
        self.image_size = image_size or getattr(pipe, "image_size", None)
        if count_positions is None and getattr(pipe, "max_positions", None) is not None:
            count_positions = pipe.count_positions
        self.count_positions = count_positions
        # the answer's own tokens, then [IMG0..7] appended after them when forced, must fit after the prompt;
        # 2 more for the space the forced context adds and a re-tokenised answer running a token longer
        self.n_img_tokens = len(getattr(getattr(pipe, "model", None), "img_ids", ())) or 8
        self.history: list = []

    @property
    def prompt_budget(self) -> int | None:
        """The most positions the prompt may take (None: no limit known)."""
        if self.max_positions is None or self.count_positions is None:
            return None
        return self.max_positions - self.max_new_tokens - self.n_img_tokens - 2

    def respond(self, history, force_image: bool | None = None) -> Reply:
        """Answer ``history`` (list of str | image | Reply). With ``force_image`` the ``[IMG]`` tokens are
        appended after the text even if the model did not emit them (as the VIST evaluation forces them).
        Refuses a history longer than the LM's window (`ask` trims it first)."""
        force_image = self.force_image if force_image is None else force_image
        # every image at the encoder's size: the user's, and those the model showed (a generator's output size
        # need not be the encoder's input size)
        prompt = [self._prepare(x) for x in dialogue_prompt(history)]
        budget = self.prompt_budget
        if budget is not None and (n := self.count_positions(prompt)) > budget:
            raise ValueError(f"the conversation takes {n} LM positions, more than the {budget} this LM leaves for "
                             f"a prompt ({self.max_positions} in all); ask() drops the oldest turns")
        response = self.pipe.respond(prompt, self.max_new_tokens, seed=self.seed, force_image=force_image,
                                     stop_words=DIALOGUE_STOPS, trim=answer_text)
        reply = Reply(text=response.text, emitted_img=response.emitted_img)
        if response.image is not None:
            shown = response.image
            reply.images.append(ChatImage(np.asarray(shown.image), shown.source, shown.probabilities))
        return reply

    def ask(self, *items, force_image: bool | None = None) -> Reply:
        """Add a user turn (texts and/or images) to the kept conversation and answer it.

        The oldest turns are dropped (and a message too long on its own loses its first words) to keep the
        prompt inside the LM's window; the reply says what was cut. If answering fails, the kept conversation
        is left exactly as it was, so the next turn works."""
        if not items:
            raise ValueError("ask() needs at least one text or image")
        turn = [self._prepare(x) for x in items]
        history, dropped, shortened = self.fit(list(self.history) + turn)
        reply = self.respond(history, force_image)
        reply.dropped_turns, reply.shortened = dropped, shortened
        self.history = history + [reply]
        return reply

    def fit(self, history) -> tuple[list, int, bool]:
        """``history`` cut to the LM's window: (history, oldest turns dropped, whether the last turn's text
        lost its first words). A turn is a user's items and the `Reply` that answered them."""
        budget = self.prompt_budget
        if budget is None:
            return list(history), 0, False
        turns = _turns(history)

        def fits(items) -> bool:
            return self.count_positions(dialogue_prompt(items)) <= budget

        dropped = 0
        while len(turns) > 1 and not fits([x for t in turns for x in t]):
            turns.pop(0)
            dropped += 1
        current = turns[-1]
        shortened = False
        if not fits(current):
            current = _keep_last_words(current, fits)
            shortened = True
        return current if len(turns) == 1 else [x for t in turns[:-1] for x in t] + current, dropped, shortened

    def _prepare(self, item):
        """Texts and replies as they are; an image as uint8 RGB at the encoder's input size."""
        return item if isinstance(item, (str, Reply)) else encoder_image(item, self.image_size)

    def reset(self) -> None:
        """Forget the kept conversation."""
        self.history.clear()


def answer_text(text: str) -> str:
    """The answer in a decoded continuation: up to the next ``Q:`` turn, without a stray next-turn ``q``."""
    return clean_answer(text[:_next_turn(text)].strip())


def _next_turn(text: str) -> int:
    """Where a decoded answer runs into the next ``Q:`` turn (word-level tokenizers decode it as ``q :``)."""
    lowered = text.lower()
    cuts = [i for i in (lowered.find("q :"), lowered.find("q:")) if i >= 0]
    return min(cuts) if cuts else len(text)


def clean_answer(text: str) -> str:
    """A decoded answer without the start of the next turn: decoding stops at the ``q`` of the next ``Q:``
    (word-level stand-ins) and keeps that token, which would end every answer with a stray " q"."""
    return _NEXT_TURN.sub("", text.strip()).strip()


_NEXT_TURN = re.compile(r"(?:^|\s)q\s*:?$", re.IGNORECASE)


def _turns(history) -> list[list]:
    """``history`` split after each `Reply`; the last list is the turn being asked (possibly empty)."""
    turns: list[list] = [[]]
    for item in history:
        turns[-1].append(item)
        if isinstance(item, Reply):
            turns.append([])
    if not turns[-1] and len(turns) > 1:
        turns.pop()
    return turns


def _keep_last_words(turn: list, fits) -> list:
    """``turn`` with its texts' first words dropped, as few as needed for ``fits`` (earlier texts go first);
    raises if not even the last word of its last text fits (too many images for the window)."""
    turn = list(turn)
    for i, item in enumerate(turn):
        if not isinstance(item, str):
            continue
        words = item.split()
        lo, hi = 0, len(words)  # keep the last `lo` words: the largest count that fits, by bisection
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(_without_empty(turn[:i] + [" ".join(words[-mid:])] + turn[i + 1:])):
                lo = mid
            else:
                hi = mid - 1
        if lo:
            return _without_empty(turn[:i] + [" ".join(words[-lo:])] + turn[i + 1:])
        turn[i] = ""  # not even one word of this text fits with what follows: drop it, shorten the next
    raise ValueError("this message does not fit in the LM's window even with one word (too many images?); "
                     "send a shorter message or fewer images")


def _without_empty(items: list) -> list:
    return [x for x in items if not (isinstance(x, str) and not x)]


def transcript(history) -> str:
    """A conversation as text, images shown as ``<image>`` (for printing)."""
    return "\n".join(x if isinstance(x, str) else "<image>" for x in dialogue_prompt(history, answer_next=False))


def world_index(pipe, profile, split: str = "train", n: int | None = None):
    """A `RetrievalIndex` over ShapeStories corpus images, holding the images (the paper retrieves from its
    training images, CC3M), for ``pipe.index``: returns (index, captions)."""
    from gill_lite.world.corpus import make_split, render_images, split_sizes

    w = profile.world
    n = split_sizes(w)[split] if n is None else n
    examples = make_split(split, n, w.seed, w.heldout_fraction, w.image_size)
    index = pipe.build_index(render_images(examples, w.image_size), [e.id for e in examples])
    return index, [e.caption for e in examples]
