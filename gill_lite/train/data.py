"""Captioned training data: the ShapeStories corpus or a CC3M-format TSV, behind one small class."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class CaptionSet:
    """``ids``/``captions`` in a fixed order and ``load_images(indices) -> uint8 (n, H, W, 3)``.

    ``name`` identifies the data in cache file names (it changes when the data would change).
    ``img_texts``: the text the [IMG] losses (prediction, generation, retrieval) read before ``[IMG0..7]``, row
    by row; default the captions. The captioning loss and the generation targets always read ``captions``.
    """

    name: str
    ids: list[str]
    captions: list[str]
    load_images: Callable[[Sequence[int]], np.ndarray]
    img_texts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __post_init__(self):
        if len(self.ids) != len(self.captions):
            raise ValueError(f"{len(self.ids)} ids but {len(self.captions)} captions")
        if self.img_texts is None:
            self.img_texts = self.captions
        elif len(self.img_texts) != len(self.captions):
            raise ValueError(f"{len(self.captions)} captions but {len(self.img_texts)} img_texts")


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def world_identity(profile) -> dict:
    """The world's fields as GILL's stage fingerprints (`gill_lite.train.loop.fingerprint`) and the names of its
    caption sets (their feature caches) hash them.

    The LM stand-in's story count was a world field (``n_lm_stories``) when those names were first made; it now
    lives in the stand-in recipe (`gill_lite.backbones.recipes`) and is added back here under its old key, so
    that finished stages and caches stay current. (It names nothing GILL reads on its own: another count makes
    another LM, which the frozen parts' names tell apart already.)
    """
    import dataclasses

    from ..backbones.recipes import standin_recipe

    out = dataclasses.asdict(profile.world)
    if profile.standins is not None:
        out["n_lm_stories"] = standin_recipe(profile).lm.n_stories
    return out


def world_caption_set(profile, split: str = "train") -> CaptionSet:
    """A split of the ShapeStories corpus (`gill_lite.world.corpus`), rendered on demand.

    In the train split (what GILL trains on) the [IMG] side reads a seeded `RESTYLE_P` share of the single-object
    captions restyled (`restyled_texts`); the other splits read their captions as they are."""
    from ..world.corpus import make_split, render_images, split_sizes

    w = profile.world
    examples = make_split(split, split_sizes(w)[split], w.seed, w.heldout_fraction, w.image_size)
    return CaptionSet(
        name=f"world-{split}-{_digest(world_identity(profile))}",
        ids=[e.id for e in examples],
        captions=[e.caption for e in examples],
        load_images=lambda idx: render_images([examples[i] for i in idx], w.image_size),
        img_texts=restyled_texts(examples, w.seed) if split == "train" else None,
    )


def restyled_texts(examples, seed: int) -> list[str]:
    """Each example's caption, or for a seeded `RESTYLE_P` share of the single-object ones the same shape in one
    of `gill_lite.world.captions.STYLE_TEMPLATES` (several sentences, pronouns, an action, a step): the text GILL's
    [IMG] side reads, as CC3M's captions vary in form where the corpus templates do not.

    Measured (README, "Does GILL use the story?"): it closes most of the mapper's loss of colour and position
    after a story; the captioning loss and the generation targets keep the canonical captions."""
    from ..world.captions import restyle_caption
    from ..world.streams import stream_id

    out = []
    for i, e in enumerate(examples):
        styled = None
        if len(e.scene.shapes) == 1:
            styled = restyle_caption(e.shape, np.random.default_rng([seed, stream_id("corpus/restyle"), i]))
        out.append(styled or e.caption)
    return out


def cc3m_caption_set(profile) -> CaptionSet:
    """The CC3M-format TSV named by ``profile.data`` (header ``caption<TAB>image``), images loaded lazily,
    resized and centre-cropped to the image encoder's input size. Bad lines are skipped (and counted)."""
    from ..data.formats import load_cc3m, load_image

    if not profile.data.cc3m_tsv:
        raise ValueError(f"profile {profile.name!r} names no CC3M TSV (profile.data.cc3m_tsv)")
    tsv = profile.resolve(profile.data.cc3m_tsv)
    images = profile.resolve(profile.data.cc3m_images) if profile.data.cc3m_images else None
    rows, skipped = load_cc3m(tsv, images, skip_bad=True, load_images=False)
    if skipped:
        print(f"CC3M: skipped {len(skipped)} bad lines of {tsv} (first: {skipped[0]})")
    size = profile.image_encoder.image_size
    return CaptionSet(
        name=f"cc3m-{_digest([tsv, len(rows)])}",
        ids=[r.image_path.name for r in rows],
        captions=[r.caption for r in rows],
        load_images=lambda idx: np.stack([load_image(rows[i].image_path, size) for i in idx]),
    )


def training_set(profile) -> CaptionSet:
    """What GILL trains on: the corpus train split (ShapeStories profiles) or CC3M (``paper``)."""
    return world_caption_set(profile, "train") if profile.uses_world else cc3m_caption_set(profile)
