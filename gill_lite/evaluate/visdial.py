"""VisDial v1.0 dialogues (the paper's dialogue-conditioned generation) and their ShapeStories stand-in.

The VisDial v1.0 JSON (``visdial_1.0_val.json``)::

    {"version": "1.0", "split": "val2018",
     "data": {"questions": [str, ...], "answers": [str, ...],
              "dialogs": [{"image_id": int, "caption": str,
                           "dialog": [{"question": int, "answer": int, "answer_options": [int, ...],
                                       "gt_index": int}, ...]}, ...]}}

Questions and answers are indices into the shared lists; questions carry no question mark. GILL's
``evals/generate_visdial_images.py`` conditions on the Q/A rounds only (not the caption), written
``Q: <question>?`` / ``A: <answer>`` one per line (`gill_lite.evaluate.contexts.dialogue_text`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .contexts import dialogue_text


@dataclass(frozen=True)
class VisDialDialog:
    """One dialogue: the image id, the caption and its (question, answer) rounds."""

    image_id: int
    caption: str
    rounds: list[tuple[str, str]]
    split: str = "val2018"

    @property
    def text(self) -> str:
        return dialogue_text(self.rounds)

    def image_path(self, images_dir) -> Path:
        """``<images_dir>/VisualDialog_val2018_000000185565.jpg``: the release's zero-padded file names."""
        return Path(images_dir) / f"VisualDialog_{self.split}_{self.image_id:012d}.jpg"


def load_visdial(path) -> list[VisDialDialog]:
    """Read a VisDial v1.0 JSON file. Raises ValueError naming the first malformed entry."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"VisDial file not found: {path}")
    with open(path) as f:
        raw = json.load(f)
    try:
        data = raw["data"]
        questions, answers, dialogs = data["questions"], data["answers"], data["dialogs"]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a VisDial v1.0 file (needs data.questions/answers/dialogs)") from e
    split = raw.get("split", "val2018")
    out = []
    for i, d in enumerate(dialogs):
        try:
            rounds = []
            for r in d["dialog"]:
                if "answer" not in r:  # the test split leaves the last round unanswered
                    continue
                rounds.append((questions[r["question"]], answers[r["answer"]]))
            out.append(VisDialDialog(int(d["image_id"]), d.get("caption", ""), rounds, split))
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed dialog #{i} ({type(e).__name__}: {e})") from e
    return out


def world_dialogue_known(dialogue) -> list[str]:
    """Which attributes of a one-object ShapeStories dialogue's shape its Q/A rounds state.

    Answers only ever state the truth ("no, it is blue."), so an attribute is determined when its true value
    appears in an answer; the kind also counts when a question names it ("what colour is the circle?").
    """
    from gill_lite.world.captions import WHERE

    shape = dialogue.scene.main
    answers = " ".join(a for _, a in dialogue.turns).lower()
    questions = " ".join(q for q, _ in dialogue.turns).lower()
    known = []
    if shape.kind in answers or shape.kind in questions:
        known.append("kind")
    if shape.colour in answers:
        known.append("colour")
    if shape.size in answers:
        known.append("size")
    if WHERE[shape.position] in answers:
        known.append("position")
    return known
