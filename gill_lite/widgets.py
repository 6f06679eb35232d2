"""Notebook widgets (ipywidgets). Each part is self-contained:

- the judging panel (notebook 05): a person judges generated-vs-retrieved pairs, one vote per click;
- the chat widget (notebook 07) lives below it.

Widgets are built without a display, so they also run headless (nbval, tests); their handlers can be called
directly to drive them from code.
"""
from __future__ import annotations

import io
import json
import os
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

# ===================================================================================== judging panel (05)

CHOICES = ("first", "second", "same")  # the three buttons


@dataclass(frozen=True)
class JudgingItem:
    """One prompt to judge: its text and its two images (uint8 (H, W, 3) arrays or image file paths)."""

    id: str
    prompt: str
    gen: object = field(repr=False)
    ret: object = field(repr=False)


def shown_order(item_id: str, seed: int = 0) -> tuple[str, str]:
    """Which image is shown first: ("gen", "ret") or ("ret", "gen"), seeded per item (stable across sessions)."""
    rng = np.random.default_rng([seed, zlib.crc32(item_id.encode())])
    return ("gen", "ret") if rng.random() < 0.5 else ("ret", "gen")


def choice_to_vote(choice: str, order: tuple[str, str]) -> str:
    """Map a button ("first"/"second"/"same") back to a vote ("gen"/"ret"/"same")."""
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {CHOICES}, not {choice!r}")
    return "same" if choice == "same" else order[CHOICES.index(choice)]


def append_vote(path: str | os.PathLike, record: dict) -> None:
    """Append one vote as a JSON line and make it durable (flush + fsync) before returning: a finished vote
    survives the kernel dying right after."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record) + "\n"
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():  # a torn last line (died mid-write) must not swallow this one
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = "\n" + line
        f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())


def remove_last_vote(path: str | os.PathLike, ids=None, judge: str | None = None) -> dict | None:
    """Take the last vote (of ``judge``, on one of ``ids``, when given) out of the votes file; returns its record,
    or None when there is none. The file is rewritten whole into a temporary file next to it, made durable,
    then swapped in with `os.replace`: a crash at any moment leaves either the old file or the new one, so every
    other finished vote survives. Unreadable lines (a torn last line) are kept as they are."""
    path = Path(path)
    if not path.exists():
        return None
    lines = path.read_text().splitlines()
    wanted = None if ids is None else {str(i) for i in ids}
    for i in range(len(lines) - 1, -1, -1):
        try:
            record = json.loads(lines[i])
            item_id = str(record["id"])
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        if (wanted is None or item_id in wanted) and (judge is None or record.get("judge", judge) == judge):
            _atomic_write_text(path, "".join(line + "\n" for line in lines[:i] + lines[i + 1:]))
            return record
    return None


def _atomic_write_text(path: Path, text: str) -> None:
    """`gill_lite.io.atomic_path`, with the new file and the rename made durable (as `append_vote` is)."""
    from gill_lite.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:  # the rename itself is durable once the folder is synced
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_votes(path: str | os.PathLike) -> dict[str, str]:
    """Votes saved by the panel, ``{item id: "gen"|"ret"|"same"}`` (a later vote on the same item wins;
    unreadable lines, e.g. a torn last line, are ignored)."""
    path = Path(path)
    votes: dict[str, str] = {}
    if not path.exists():
        return votes
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            votes[str(record["id"])] = str(record["vote"])
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return votes


def merge_votes(simulated: Sequence[Sequence[str]], ids: Sequence[str], human: dict[str, str],
                slot: int = 0) -> list[list[str]]:
    """The votes to use: the simulated judges' votes, with the person's vote in place of judge ``slot`` on
    every item they judged (no clicks = the simulated votes unchanged)."""
    if len(simulated) != len(ids):
        raise ValueError(f"{len(simulated)} vote rows but {len(ids)} ids")
    merged = []
    for row, item_id in zip(simulated, ids):
        row = list(row)
        if item_id in human:
            row[slot] = human[item_id]
        merged.append(row)
    return merged


def _png_bytes(image, px: int) -> bytes:
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as im:
            pil = im.convert("RGB")
    else:
        pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    buf = io.BytesIO()
    pil.resize((px, px), Image.Resampling.NEAREST).save(buf, format="PNG")  # nearest: keep the pixels honest
    return buf.getvalue()


class JudgingPanel:
    """Show a prompt and its two images in a seeded random order, unlabelled; three buttons vote.

    Every click appends the vote to ``votes_path`` at once (see `append_vote`); a new panel on the same file
    resumes at the first item not yet judged; "undo last vote" takes the last vote back out (`undo`, see
    `remove_last_vote`) and shows its prompt again. ``panel.widget`` is the ipywidgets box to display; tests and
    headless runs call `vote` and `undo` (what the buttons call).
    """

    def __init__(self, items: Sequence[JudgingItem], votes_path: str | os.PathLike, seed: int = 0,
                 judge: str = "human", image_px: int = 128):
        import ipywidgets as w

        if len({it.id for it in items}) != len(items):
            raise ValueError("item ids must be unique")
        self.items, self.path, self.seed, self.judge, self.image_px = list(items), Path(votes_path), seed, judge, image_px
        self.votes = load_votes(self.path)
        self._index = 0
        self._prompt = w.HTML()
        self._status = w.HTML()
        self._images = [w.Image(format="png", width=image_px, height=image_px) for _ in range(2)]
        self.buttons = {c: w.Button(description=label, layout=w.Layout(width="auto")) for c, label in
                        zip(CHOICES, ("first is better", "second is better", "about the same"))}
        for choice, button in self.buttons.items():
            button.on_click(lambda _button, choice=choice: self._safely(self.vote, choice))
        self.undo_button = w.Button(description="undo last vote", icon="undo", layout=w.Layout(width="auto"))
        self.undo_button.on_click(lambda _button: self._safely(self.undo))
        pictures = w.HBox([w.VBox([w.HTML(f"<b>{name}</b>"), img]) for name, img in zip(("first", "second"), self._images)])
        self.widget = w.VBox([self._prompt, pictures, w.HBox(list(self.buttons.values()) + [self.undo_button]),
                              self._status])
        self._advance()

    def _safely(self, handler, *args):
        """Run a button's handler; an error is shown in the panel (a handler's exception would otherwise only
        reach JupyterLab's log console) and the panel stays usable."""
        try:
            return handler(*args)
        except Exception as e:  # noqa: BLE001 - shown to the person, who can retry
            self._status.value = f"<span style='color:#b00'>error: {_escape(f'{type(e).__name__}: {e}')}</span>"
            return None

    @property
    def current(self) -> JudgingItem | None:
        """The item on screen (None when everything is judged)."""
        return self.items[self._index] if self._index < len(self.items) else None

    @property
    def remaining(self) -> int:
        return sum(it.id not in self.votes for it in self.items)

    def _advance(self) -> None:
        while self._index < len(self.items) and self.items[self._index].id in self.votes:
            self._index += 1
        item = self.current
        done = len(self.items) - self.remaining
        self.undo_button.disabled = done == 0
        for b in self.buttons.values():
            b.disabled = item is None
        if item is None:
            self._prompt.value = f"<b>All {len(self.items)} prompts judged.</b> Votes are in <code>{self.path}</code>."
            return
        order = shown_order(item.id, self.seed)
        self._prompt.value = f"<p>{done}/{len(self.items)} judged. Which image matches the prompt better?</p><h4>{item.prompt}</h4>"
        for img, kind in zip(self._images, order):
            img.value = _png_bytes(getattr(item, kind), self.image_px)

    def vote(self, choice: str) -> str | None:
        """Record ``choice`` ("first", "second", "same") for the item on screen; returns the saved vote."""
        item = self.current
        if item is None:
            return None
        order = shown_order(item.id, self.seed)
        vote = choice_to_vote(choice, order)
        append_vote(self.path, {"id": item.id, "vote": vote, "choice": choice, "first": order[0],
                                "judge": self.judge, "time": time.time()})
        self.votes[item.id] = vote
        self._status.value = f"saved: {choice} ({self.path.name})"
        self._advance()
        return vote

    def undo(self) -> str | None:
        """Take back the last vote of this panel's judge on its prompts (from the file too) and show that prompt
        again; returns the id of the prompt, or None when there was nothing to undo."""
        record = remove_last_vote(self.path, [it.id for it in self.items], self.judge)
        if record is None:
            self._status.value = "nothing to undo"
            self._advance()
            return None
        self.votes = load_votes(self.path)
        self._index = next(i for i, it in enumerate(self.items) if it.id == str(record["id"]))
        self._status.value = f"undone: {record.get('choice', record.get('vote'))} on this prompt"
        self._advance()
        return str(record["id"])

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


# ========================================================================================= chat widget (07)

def uploaded_image(upload_value) -> np.ndarray | None:
    """The image of an ipywidgets ``FileUpload`` value (8.x: a tuple of dicts with ``content``), as uint8 RGB at
    its own size (any mode; transparency on black; `gill_lite.chat.GillChat` resizes it for the encoder)."""
    from PIL import Image

    from gill_lite.chat import encoder_image

    if not upload_value:
        return None
    item = upload_value[0] if isinstance(upload_value, (tuple, list)) else next(iter(upload_value.values()))
    with Image.open(io.BytesIO(bytes(item["content"]))) as im:
        return encoder_image(im)


class ChatWidget:
    """Chat with GILL: a text box (Enter sends), an image picker (world images by neutral names, "image 1", ...)
    and a file upload; each answer is rendered inline with its image, where it came from (retrieved /
    generated) and the decision's probabilities.

    ``chat`` is a `gill_lite.inference.GillPipeline` (the widget starts a `gill_lite.chat.GillChat` with it, at
    ``seed``) or a `GillChat` already made; the "always answer with an image" box starts at ``force_image``
    (default: the chat's own ``force_image``). Headless runs (nbval, tests) call `send` directly, which is what
    the button and Enter call. An error while answering is shown in the widget, the turn is not kept, and the
    widget stays usable. ``transcript`` keeps every turn as ``(role, text, image or None, caption)``.
    """

    NO_IMAGE = "(no image)"

    def __init__(self, chat, picker_images: dict | None = None, image_px: int = 96, force_image: bool | None = None,
                 seed: int = 0):
        import ipywidgets as w

        from gill_lite.chat import GillChat

        if not isinstance(chat, GillChat):  # a pipeline: a new conversation with it
            chat = GillChat(chat, seed=seed, force_image=bool(force_image))
        self.chat, self.image_px = chat, image_px
        self.picker_images = dict(picker_images or {})
        self.transcript: list[tuple[str, str, object, str]] = []
        wide = {"description_width": "initial"}  # labels at their full width, not cut at the default 90px
        self.text = w.Text(placeholder="Ask something, e.g. show me a small red circle (Enter sends)",
                           layout=w.Layout(width="60%"))
        self.picker = w.Dropdown(options=[self.NO_IMAGE] + list(self.picker_images), description="image", style=wide)
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="upload")
        force = getattr(chat, "force_image", False) if force_image is None else force_image
        self.force = w.Checkbox(value=bool(force), description="always answer with an image", indent=False,
                                style=wide, layout=w.Layout(width="auto"))
        self.button = w.Button(description="send", button_style="primary")
        self.button.on_click(lambda _b: self.send_safely())
        with warnings.catch_warnings():  # "submit" (Enter) is still what the front end sends on Enter in 8.x
            warnings.simplefilter("ignore", DeprecationWarning)
            self.text.on_submit(lambda _t: self.send_safely())
        self.log = w.VBox([])
        self.status = w.HTML()
        self.widget = w.VBox([self.log, w.HBox([self.text, self.button]), w.HBox([self.picker, self.upload, self.force]),
                              self.status])

    def _bubble(self, role: str, text: str, image=None, caption: str = ""):
        import ipywidgets as w

        colour = {"user": "#eef", "GILL": "#efe"}.get(role, "#fee")
        parts = [w.HTML(f"<div style='background:{colour};padding:4px'><b>{role}:</b> {_escape(text)}</div>")]
        if image is not None:
            parts.append(w.Image(value=_png_bytes(image, self.image_px), format="png", width=self.image_px,
                                 height=self.image_px))
        if caption:
            parts.append(w.HTML(f"<small>{_escape(caption)}</small>"))
        self.log.children = tuple(self.log.children) + (w.VBox(parts),)
        self.transcript.append((role, text, image, caption))

    def _note(self, text: str) -> None:
        import ipywidgets as w

        self.log.children = tuple(self.log.children) + (w.HTML(f"<small><i>{_escape(text)}</i></small>"),)

    def send(self, text: str | None = None, image=None, force_image: bool | None = None):
        """Send a turn (default: the widgets' current text and chosen/uploaded image); returns the `Reply`.
        Errors propagate (the button and Enter go through `send_safely`)."""
        text = self.text.value if text is None else text
        if image is None:
            image = uploaded_image(self.upload.value)
            if image is None and self.picker.value in self.picker_images:
                image = self.picker_images[self.picker.value]
        if not text.strip() and image is None:
            self.status.value = "type a question or choose an image first"
            return None
        items = ([np.asarray(image)] if image is not None else []) + ([text] if text.strip() else [])
        self._bubble("user", text, image)
        self.status.value = "thinking..."
        try:
            reply = self.chat.ask(*items, force_image=self.force.value if force_image is None else force_image)
        except Exception:
            self.status.value = ""
            raise
        if reply.dropped_turns or reply.shortened:
            cut = []
            if reply.dropped_turns:
                cut.append(f"the oldest {reply.dropped_turns} turn{'s' * (reply.dropped_turns > 1)} dropped")
            if reply.shortened:
                cut.append("your message's first words dropped")
            window = getattr(self.chat, "max_positions", None)
            self._note(f"({' and '.join(cut)} to fit the language model's window"
                       + (f" of {window} positions)" if window else ")"))
        if reply.images:
            for img, source, probs in reply.images:
                caption = f"{source} (p generate {probs['generate']:.2f}, p retrieve {probs['retrieve']:.2f})"
                self._bubble("GILL", reply.text, img, caption)
        else:
            self._bubble("GILL", reply.text or "(no words)")
        self.text.value, self.picker.value, self.status.value = "", self.NO_IMAGE, ""
        self.upload.value = ()
        return reply

    def send_safely(self):
        """`send`, with any error shown in the widget instead of raised: the failed turn is not kept in the
        conversation (`GillChat.ask` leaves it as it was), the text stays in the box to edit or resend."""
        try:
            return self.send()
        except Exception as e:  # noqa: BLE001 - shown to the person, who can retry
            self._bubble("error", f"{type(e).__name__}: {e} (this turn was not kept; the chat goes on)")
            self.status.value = ""
            return None

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def _escape(text: str) -> str:
    import html

    return html.escape(text).replace("\n", "<br>")
