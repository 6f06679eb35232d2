"""The real data formats, written from ShapeStories and read back by the same loaders that read the real data.

CC3M-style TSV
    A header ``caption<TAB>image`` then one line per example; ``image`` is a file name inside an images folder.
VIST SIS JSON (story-in-sequence, the released schema)
    ``{"images": [{"id", "url_o", ...}], "annotations": [[{"story_id", "storylet_id", "photo_flickr_id",
    "text", "original_text", "worker_arranged_photo_order", "album_id", "tier"}], ...], ...}``: each annotation
    is a one-element list (one storylet); a story is the storylets sharing ``story_id``, ordered by
    ``worker_arranged_photo_order``. Images are ``<photo_flickr_id>.<ext>`` in an images folder.
Decision TSV (GILL's PartiPrompts decisions), in the two layouts GILL published
    ``PartiPromptsAllDecisions_*.tsv``: columns ``Prompt, Category, Challenge, Note, Decisions``; ``Decisions``
    holds the comma-separated votes (``ret``/``gen``/``same``): 5 on most rows, fewer on some rows of the
    released file. ``PartiPromptsDecisionsConfident.tsv`` (what ``scripts/process_p2_annotations.py`` writes and
    GILL's ``TrainDecisionClassifier.ipynb`` reads): the same columns with ``Decisions`` replaced by
    ``Decision``, one label per row (``same`` for a prompt the rule drops). A *prompts* file (what
    `gill-lite world` writes before anyone judges) has the votes layout with ``Decisions`` empty.
    `load_decisions` reads all three (empty Decisions -> ``[]``) and counts what it read (``.counts``).

Every loader raises `DataFormatError` naming the file and line (or story) of bad input, or, with
``skip_bad=True``, skips it and reports why in a list of `Skipped`.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

VOTES = ("ret", "gen", "same")
DECISION_COLUMNS = ("Prompt", "Category", "Challenge", "Note", "Decisions")
CONFIDENT_COLUMNS = ("Prompt", "Category", "Challenge", "Note", "Decision")  # PartiPromptsDecisionsConfident.tsv
CC3M_COLUMNS = ("caption", "image")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp")


class DataFormatError(ValueError):
    """Bad input in a data file; the message names the file and the line or story."""


@dataclass(frozen=True)
class Skipped:
    """One piece of input a loader skipped (``skip_bad=True``), and why."""

    file: str
    where: str  # "line 7" or "story 12"
    reason: str


class LoadedList(list):
    """A list of loaded items that also carries ``.skipped`` (a list of `Skipped`)."""

    def __init__(self, items=(), skipped=(), counts=None):
        super().__init__(items)
        self.skipped = list(skipped)
        self.counts = dict(counts or {})  # what a loader counted while reading (see `load_decisions`)


def _fail_or_skip(skip_bad: bool, skipped: list, file, where: str, reason: str):
    if not skip_bad:
        raise DataFormatError(f"{file}: {where}: {reason}")
    skipped.append(Skipped(str(file), where, reason))


def load_image(path, size: int | None = None) -> np.ndarray:
    """An image file as uint8 RGB ``(H, W, 3)``; with ``size``, resized (shorter side, bicubic) and centre-cropped
    to ``size`` x ``size``, CLIP's preprocessing geometry. The one image loader of the library: training (CC3M),
    the VIST and VisDial evaluations read images through it.

    Raises `DataFormatError` naming the file when it is missing or does not decode (truncated, corrupt, not an
    image): a broken image is reported, never replaced by a blank one.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: image file not found")
    try:
        with Image.open(path) as im:
            im.verify()  # catches truncated/corrupt files before decoding
        with Image.open(path) as im:
            im = im.convert("RGB")
    except Exception as err:  # PIL raises many types for broken files
        raise DataFormatError(f"{path}: cannot read image ({type(err).__name__}: {err})") from err
    if size is not None:
        scale = size / min(im.size)
        im = im.resize((max(size, round(im.width * scale)), max(size, round(im.height * scale))),
                       Image.Resampling.BICUBIC)
        left, top = (im.width - size) // 2, (im.height - size) // 2
        im = im.crop((left, top, left + size, top + size))
    return np.asarray(im, dtype=np.uint8)


def save_png(image: np.ndarray, path) -> None:
    """Write uint8 RGB as PNG (deterministic bytes: PIL writes no timestamps)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB").save(path, format="PNG")


def _clean(text: str, what: str) -> str:
    if any(c in text for c in "\t\r\n"):
        raise DataFormatError(f"{what} contains a tab or newline: {text!r}")
    return text


# ---------------------------------------------------------------------------------------------------- CC3M
@dataclass(frozen=True)
class CC3MRow:
    caption: str
    image_path: Path
    line: int
    image: np.ndarray | None = field(default=None, compare=False, repr=False)


def export_cc3m(examples, out_dir, image_size: int = 32, tsv_name: str = "captions.tsv", images_dir: str = "images") -> Path:
    """Write ``examples`` (corpus `Example`s) as ``out_dir/tsv_name`` plus ``out_dir/images_dir/<id>.png``."""
    out_dir = Path(out_dir)
    lines = ["\t".join(CC3M_COLUMNS)]
    for ex in examples:
        name = f"{ex.id}.png"
        save_png(ex.image(image_size), out_dir / images_dir / name)
        lines.append(f"{_clean(ex.caption, 'caption')}\t{name}")
    path = out_dir / tsv_name
    path.write_text("\n".join(lines) + "\n")
    return path


def load_cc3m(tsv, images_dir=None, skip_bad: bool = False, load_images: bool = True) -> tuple[list[CC3MRow], list[Skipped]]:
    """Read a CC3M-style TSV; ``images_dir`` defaults to ``images/`` beside it.

    Returns ``(rows, skipped)``. A line with the wrong column count or an empty caption, or a missing image
    (or, with ``load_images``, one that does not decode), raises `DataFormatError` ("file: line N: reason")
    unless ``skip_bad``. ``load_images=False`` checks only that each image file exists and is not empty (a
    ``stat``, no decoding): at CC3M's size every rank of a multi-GPU run reads the TSV, and decoding 3M
    images there would outlast the process group's timeout. An image that then fails to decode is reported
    when it is read (`load_image` raises; the feature cache counts and lists it, `gill_lite.train.caches`).
    """
    tsv = Path(tsv)
    images_dir = Path(images_dir) if images_dir is not None else tsv.parent / "images"
    if not tsv.is_file():
        raise DataFormatError(f"{tsv}: file not found")
    rows, skipped = [], []
    lines = tsv.read_text().splitlines()
    if not lines or tuple(c.strip().lower() for c in lines[0].split("\t")) != CC3M_COLUMNS:
        raise DataFormatError(f"{tsv}: line 1: expected the header 'caption<TAB>image', got {lines[0]!r}" if lines else f"{tsv}: empty file")
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            _fail_or_skip(skip_bad, skipped, tsv, f"line {number}", f"expected 2 tab-separated columns, got {len(cols)}")
            continue
        caption, name = cols[0].strip(), cols[1].strip()
        if not caption:
            _fail_or_skip(skip_bad, skipped, tsv, f"line {number}", "empty caption")
            continue
        path = images_dir / name
        try:
            image = load_image(path) if load_images else _verify(path)
        except DataFormatError as err:
            _fail_or_skip(skip_bad, skipped, tsv, f"line {number}", str(err))
            continue
        rows.append(CC3MRow(caption, path, number, image))
    return rows, skipped


def _verify(path: Path) -> None:
    """Cheap check that ``path`` could be an image: it exists and is not empty (no decoding, see `load_cc3m`)."""
    try:
        size = path.stat().st_size
    except OSError:
        raise DataFormatError(f"{path}: image file not found") from None
    if size == 0:
        raise DataFormatError(f"{path}: image file is empty")


# ---------------------------------------------------------------------------------------------------- VIST
@dataclass(frozen=True)
class VistStory:
    story_id: str
    photo_ids: list[str]
    texts: list[str]  # VIST "text": lowercased and tokenised ("it moves down .")
    original_texts: list[str] = field(default_factory=list)  # what the worker wrote
    image_paths: list[Path] = field(default_factory=list)  # filled when images_dir is given

    def images(self) -> np.ndarray:
        """The story's images as uint8 ``(n, H, W, 3)`` (needs ``images_dir`` at load time)."""
        if not self.image_paths:
            raise DataFormatError(f"story {self.story_id}: loaded without images_dir")
        return np.stack([load_image(p) for p in self.image_paths])


def vist_text(caption: str) -> str:
    """VIST's normalised ``text`` field: lowercase, punctuation split off (``"It moves." -> "it moves ."``)."""
    from gill_lite.world.text import word_tokens

    return " ".join(word_tokens(caption))


def export_vist(stories, out_dir, image_size: int = 32, json_name: str = "sis.json", images_dir: str = "images") -> Path:
    """Write ShapeStories `Story`s as a VIST SIS JSON plus ``images_dir/<photo_flickr_id>.png``.

    Story ``i`` (in the given order) gets ``story_id`` ``str(i)`` and photo ids ``str(1000000 + 10 i + k)``.
    """
    out_dir = Path(out_dir)
    images, albums, annotations = [], [], []
    for i, story in enumerate(stories):
        album = str(500000 + i)
        albums.append({"id": album, "title": story.id, "description": "ShapeStories", "vist_label": "shapestories"})
        for k, (image, caption) in enumerate(zip(story.images(image_size), story.captions)):
            photo = str(1000000 + 10 * i + k)
            save_png(image, out_dir / images_dir / f"{photo}.png")
            images.append({"id": photo, "album_id": album, "url_o": f"{photo}.png", "title": "", "tags": "", "datetaken": ""})
            annotations.append([{
                "story_id": str(i), "storylet_id": str(5 * i + k), "photo_flickr_id": photo, "album_id": album,
                "text": vist_text(caption), "original_text": caption, "worker_arranged_photo_order": k,
                "worker_id": "shapestories", "setting": "first-2-pick-and-tell", "tier": "story_in_sequence",
            }])
    doc = {"info": {"description": "ShapeStories exported in the VIST SIS format"}, "type": "story_in_sequence",
           "albums": albums, "images": images, "annotations": annotations}
    path = out_dir / json_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


_STORYLET_KEYS = ("story_id", "storylet_id", "photo_flickr_id", "text", "worker_arranged_photo_order")


def _find_image(images_dir: Path, photo: str) -> Path | None:
    for ext in IMAGE_EXTENSIONS:
        if (images_dir / f"{photo}{ext}").is_file():
            return images_dir / f"{photo}{ext}"
    return None


def load_vist(json_path, images_dir=None, skip_bad: bool = False) -> LoadedList:
    """Read a VIST SIS JSON into `VistStory`s (first-appearance order), storylets ordered by
    ``worker_arranged_photo_order``. With ``images_dir``, every photo must exist there (``<id>.png``/``.jpg``...).
    Bad storylets raise `DataFormatError` naming the file and story (or annotation), unless ``skip_bad``:
    then the story is dropped and listed in the result's ``.skipped``.
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise DataFormatError(f"{json_path}: file not found")
    try:
        doc = json.loads(json_path.read_text())
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{json_path}: line {err.lineno}: not valid JSON ({err.msg})") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        raise DataFormatError(f"{json_path}: expected a JSON object with an 'annotations' list")
    skipped: list[Skipped] = []
    groups: dict[str, list[dict]] = {}
    bad: set[str] = set()
    for n, ann in enumerate(doc["annotations"]):
        if not (isinstance(ann, list) and len(ann) == 1 and isinstance(ann[0], dict)):
            _fail_or_skip(skip_bad, skipped, json_path, f"annotation {n}", "expected a one-element list holding a storylet")
            continue
        s = ann[0]
        missing = [k for k in _STORYLET_KEYS if k not in s]
        if missing:
            where = f"story {s['story_id']}" if "story_id" in s else f"annotation {n}"
            _fail_or_skip(skip_bad, skipped, json_path, where, f"storylet misses {missing}")
            bad.add(str(s.get("story_id")))
            continue
        groups.setdefault(str(s["story_id"]), []).append(s)
    stories = []
    images_dir = Path(images_dir) if images_dir is not None else None
    for story_id, storylets in groups.items():
        if story_id in bad:
            continue
        storylets = sorted(storylets, key=lambda s: int(s["worker_arranged_photo_order"]))
        orders = [int(s["worker_arranged_photo_order"]) for s in storylets]
        if len(set(orders)) != len(orders):
            _fail_or_skip(skip_bad, skipped, json_path, f"story {story_id}", f"repeated worker_arranged_photo_order {orders}")
            continue
        photos = [str(s["photo_flickr_id"]) for s in storylets]
        paths = []
        if images_dir is not None:
            found = [_find_image(images_dir, p) for p in photos]
            missing = [p for p, f in zip(photos, found) if f is None]
            if missing:
                _fail_or_skip(skip_bad, skipped, json_path, f"story {story_id}", f"images not found in {images_dir}: {missing}")
                continue
            paths = found
        stories.append(VistStory(story_id, photos, [s["text"] for s in storylets],
                                 [s.get("original_text", s["text"]) for s in storylets], paths))
    return LoadedList(stories, skipped)


# ------------------------------------------------------------------------------------------------ decisions
@dataclass(frozen=True)
class DecisionRow:
    prompt: str
    category: str
    challenge: str
    note: str
    decisions: list[str]  # the votes; [] for an unjudged prompt or a row of the confident layout
    line: int = 0
    decision: str | None = None  # the confident layout's one label ("gen"/"ret"/"same"), else None

    @property
    def label(self) -> str | None:
        """The confident label: the file's ``Decision`` (confident layout; "same" -> None), or `confidence_label`
        of the votes; None when the votes disagree or nobody voted."""
        if self.decision is not None:
            return None if self.decision == "same" else self.decision
        return confidence_label(self.decisions) if self.decisions else None


def confidence_label(votes) -> str | None:
    """The published confidence rule (GILL's ``scripts/process_p2_annotations.py``) on any number of votes.

    On the vote counts: "gen" or "ret" when ``gen >= 4 or ret >= 4``, or 3 votes for one and at most 1 for the
    opposite label ("same" votes are not opposite); then the label is the most common vote, as published.
    Otherwise None: the published script writes "same" and GILL's notebook drops the prompt. The released
    file has rows with fewer than 5 votes; the rule applies to them unchanged (e.g. ``ret,ret,ret`` is "ret",
    ``ret,same,ret,gen`` is dropped). No votes at all is an error (an unjudged prompt has no label).
    """
    from collections import Counter

    votes = [v.strip().lower() for v in votes]
    bad = [v for v in votes if v not in VOTES]
    if bad:
        raise ValueError(f"unknown vote(s) {bad}; votes are {VOTES}")
    if not votes:
        raise ValueError("the confidence rule needs at least one vote, got none")
    counts = Counter(votes)
    gen, ret = counts["gen"], counts["ret"]
    if gen >= 4 or ret >= 4 or (gen == 3 and ret <= 1) or (ret == 3 and gen <= 1):
        label = counts.most_common(1)[0][0]  # as published; "same" only with more than 5 votes
        return None if label == "same" else label
    return None


def shape_note(shape) -> str:
    """The Note column for a ShapeStories prompt: its ground truth, ``kind=circle;colour=red;...``."""
    return ";".join(f"{k}={v}" for k, v in shape.to_dict().items())


def parse_shape_note(note: str):
    """Inverse of `shape_note` (None if the note is not one)."""
    from gill_lite.world.attributes import Shape

    try:
        return Shape(**dict(part.split("=", 1) for part in note.split(";")))
    except (TypeError, ValueError):
        return None


def export_decisions(prompts, path, decisions=None) -> Path:
    """Write `DecisionPrompt`s as a decision TSV; ``decisions`` (one list of 5 votes per prompt) or None for
    a prompts file with the Decisions column empty. Challenge is "seen composition" / "novel composition"."""
    if decisions is not None and len(decisions) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(decisions)} decision lists")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(DECISION_COLUMNS)]
    for i, p in enumerate(prompts):
        votes = ""
        if decisions is not None:
            confidence_label(decisions[i])  # validates the votes
            votes = ",".join(decisions[i])
        challenge = "novel composition" if p.category == "novel" else "seen composition"
        lines.append("\t".join([_clean(p.text, "prompt"), p.category, challenge, shape_note(p.shape), votes]))
    path.write_text("\n".join(lines) + "\n")
    return path


def load_decisions(path, skip_bad: bool = False) -> LoadedList:
    """Read a decision TSV in either published layout (``Decisions``: votes; ``Decision``: one confident label)
    or a prompts file into `DecisionRow`s; bad lines raise `DataFormatError` ("file: line N: reason") or, with
    ``skip_bad``, are listed in the result's ``.skipped``.

    The result's ``.counts``: ``layout`` ("votes" or "confident"), ``rows``, ``gen``/``ret``/``dropped``
    (labels after the published rule; "same" rows are dropped), ``unjudged`` (no votes), and for the votes
    layout ``fewer_than_5_votes`` and ``votes_per_row`` ({number of votes: rows}).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = tuple(c.strip() for c in lines[0]) if lines else ()
    if header not in (DECISION_COLUMNS, CONFIDENT_COLUMNS):
        raise DataFormatError(f"{path}: line 1: expected the header {'<TAB>'.join(DECISION_COLUMNS)} (votes) or "
                              f"{'<TAB>'.join(CONFIDENT_COLUMNS)} (confident labels), got {'<TAB>'.join(header)!r}")
    confident = header == CONFIDENT_COLUMNS
    rows, skipped = [], []
    for number, cols in enumerate(lines[1:], start=2):
        if not cols or not any(c.strip() for c in cols):
            continue
        if len(cols) == 4 and not confident:  # a trailing empty Decisions column may have lost its tab
            cols = cols + [""]
        if len(cols) != 5:
            _fail_or_skip(skip_bad, skipped, path, f"line {number}", f"expected 5 tab-separated columns, got {len(cols)}")
            continue
        prompt, category, challenge, note, last = (c.strip() for c in cols)
        if not prompt:
            _fail_or_skip(skip_bad, skipped, path, f"line {number}", "empty prompt")
            continue
        if confident:
            label = last.lower()
            if label not in VOTES:
                _fail_or_skip(skip_bad, skipped, path, f"line {number}", f"bad Decision {last!r}; labels are {VOTES}")
                continue
            rows.append(DecisionRow(prompt, category, challenge, note, [], number, decision=label))
            continue
        votes = [v.strip().lower() for v in last.split(",")] if last else []
        if votes:
            try:
                confidence_label(votes)
            except ValueError as err:
                _fail_or_skip(skip_bad, skipped, path, f"line {number}", f"bad Decisions {last!r}: {err}")
                continue
        rows.append(DecisionRow(prompt, category, challenge, note, votes, number))
    return LoadedList(rows, skipped, _decision_counts(rows, confident))


def _decision_counts(rows, confident: bool) -> dict:
    from collections import Counter

    judged = [r for r in rows if r.decisions or r.decision is not None]
    labels = [r.label for r in judged]
    counts = {"layout": "confident" if confident else "votes", "rows": len(rows),
              "gen": labels.count("gen"), "ret": labels.count("ret"), "dropped": labels.count(None),
              "unjudged": len(rows) - len(judged)}
    if not confident:
        per_row = Counter(len(r.decisions) for r in judged)
        counts["fewer_than_5_votes"] = sum(n for k, n in per_row.items() if k < 5)
        counts["votes_per_row"] = dict(sorted(per_row.items()))
    return counts
