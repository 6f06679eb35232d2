"""The text the language-model stand-in reads, and the closed vocabulary of every world text.

`lm_pretraining_texts` is the only text the LM stand-in sees: train-split captions, stories from the "lm"
seed stream (never the evaluation stories), narrated (`gill_lite.world.narration`: restatements of the current
scene and questions about it, so that knowing the scene helps next-token prediction) and Q/A dialogues. `world_vocabulary` lists every token any world
text can produce (captions, stories, prompts, dialogues), derived from the templates and attribute values, so a
word-level tokenizer built from it never meets an unknown word.
"""
from __future__ import annotations

import re

from .attributes import VALUES
from .captions import PAIR_TEMPLATES, SINGLE_TEMPLATES, WHERE
from .corpus import make_split
from .dialogue import dialogue_vocabulary_texts, make_dialogues
from .narration import narrated_stories, narration_vocabulary_texts
from .prompts import PROMPT_TEMPLATES
from .stories import make_lm_stories, story_vocabulary_texts

_TOKEN = re.compile(r"[a-z]+|[^\sa-z]")
_FIELD = re.compile(r"\{[a-z_]+\}")


def word_tokens(text: str) -> list[str]:
    """Lowercase words and single punctuation characters: ``"It's red."`` -> ``["it", "'", "s", "red", "."]``."""
    return _TOKEN.findall(text.lower())


def lm_pretraining_texts(world_cfg, n_stories: int, story_frames: tuple[int, int]) -> list[str]:
    """Captions of the train split, then ``n_stories`` narrated "lm"-stream stories of ``story_frames`` frames
    (`gill_lite.world.stories.lm_story_frames`; the LM stand-in's recipe, `gill_lite.backbones.recipes`), then
    dialogues."""
    captions = [e.caption for e in make_split("train", world_cfg.n_train, world_cfg.seed, world_cfg.heldout_fraction, world_cfg.image_size)]
    stories = narrated_stories(make_lm_stories(n_stories, world_cfg.seed, world_cfg.image_size, story_frames),
                               world_cfg.seed)
    dialogues = [d.text for d in make_dialogues(world_cfg.n_dialogues, world_cfg.seed, world_cfg.image_size)]
    return captions + stories + dialogues


def _template_texts() -> list[str]:
    texts = list(SINGLE_TEMPLATES) + list(PAIR_TEMPLATES) + list(PROMPT_TEMPLATES) + list(WHERE.values())
    texts += story_vocabulary_texts() + dialogue_vocabulary_texts() + narration_vocabulary_texts()
    texts += [v for values in VALUES.values() for v in values]
    texts += ["a"]  # `noun_phrase` ("a small red circle")
    return texts


def world_vocabulary() -> list[str]:
    """Every token (`word_tokens`) any world text can produce, sorted: words first, then punctuation."""
    vocab = {tok for text in _template_texts() for tok in word_tokens(_FIELD.sub(" ", text))}
    return sorted(vocab, key=lambda t: (not t.isalpha(), t))
