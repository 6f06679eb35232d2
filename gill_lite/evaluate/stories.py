"""One story form for every source: ShapeStories (`gill_lite.world.stories`) and VIST SIS files.

The protocols only need captions, the five images, their ids (for retrieval exclusions) and, when the world
knows it, the last frame's main shape (for the probe) and what each setting can know about it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class EvalStory:
    """A story ready for evaluation. ``images`` is uint8 (n, H, W, 3), one per caption."""

    id: str
    captions: list[str]
    images: np.ndarray
    image_ids: list[str]
    shape: object | None = None  # gill_lite.world.Shape of the last frame's main object, when known
    known: dict | None = None  # setting -> attributes of that shape the setting determines
    frame_shapes: list | None = None  # main shape of every frame, when known (retrieval's "same shape" recall)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if len(self.captions) != len(self.images) or len(self.captions) != len(self.image_ids):
            raise ValueError(
                f"story {self.id}: {len(self.captions)} captions, {len(self.images)} images, "
                f"{len(self.image_ids)} image ids; they must match"
            )

    @property
    def last_image(self) -> np.ndarray:
        return self.images[-1]


def from_world_story(story, image_size: int) -> EvalStory:
    """A `gill_lite.world.stories.Story` as an `EvalStory` (image ids ``<story id>-<frame>``)."""
    images = np.asarray(story.images(image_size))
    n = len(story.captions)
    return EvalStory(
        id=str(story.id),
        captions=list(story.captions),
        images=images,
        image_ids=[f"{story.id}-{i}" for i in range(n)],
        shape=story.frames[-1].main,
        known={k: sorted(v) for k, v in dict(story.known).items()},
        frame_shapes=[f.main for f in story.frames],
    )


def world_stories(profile, n: int | None = None) -> list[EvalStory]:
    """The evaluation stories of a ShapeStories profile: the "eval" seed stream, never read by training."""
    from gill_lite.world.stories import make_stories

    n = profile.eval.n_stories if n is None else n
    stories = make_stories(n, profile.world.seed, stream="eval", image_size=profile.world.image_size)
    return [from_world_story(s, profile.world.image_size) for s in stories]


def sis_stories(json_path, images_dir, image_size: int | None = None, probe: bool = False,
                n_frames: int = 5) -> tuple[list[EvalStory], list[dict]]:
    """Stories of a VIST SIS file (the real one or a ShapeStories export) with their images, and the skipped
    ones with reasons: a missing or undecodable image, or a story without ``n_frames`` storylets. Nothing is
    ever replaced by a blank image.

    Captions are the SIS ``text`` field (lowercased and tokenised), as the published evaluations read it.
    probe: read the last frame's shape from its true image with the world's probe (ShapeStories renders only),
    so generated images can be scored per attribute.
    """
    from gill_lite.data.formats import load_image, load_vist

    loaded = load_vist(json_path, images_dir, skip_bad=True)
    skipped = [{"story": s.where, "reason": s.reason} for s in loaded.skipped]
    stories = []
    for vs in loaded:
        if len(vs.texts) != n_frames:
            skipped.append({"story": f"story {vs.story_id}", "reason": f"{len(vs.texts)} storylets, expected {n_frames}"})
            continue
        try:
            images = np.stack([load_image(p, image_size) for p in vs.image_paths])
        except (OSError, ValueError) as e:  # DataFormatError is a ValueError
            skipped.append({"story": f"story {vs.story_id}", "reason": str(e)})
            continue
        shape = None
        if probe:
            from gill_lite.world.probe import probe_image

            shape = probe_image(images[-1])
        stories.append(EvalStory(str(vs.story_id), list(vs.texts), images, list(vs.photo_ids), shape=shape))
    return stories, skipped


def evaluation_stories(profile, n: int | None = None) -> tuple[list[EvalStory], list[dict]]:
    """The profile's evaluation stories and the skipped ones: ShapeStories' "eval" stream (tiny, ci), or the
    VIST SIS file and images named in ``profile.data`` (paper)."""
    n = profile.eval.n_stories if n is None else n
    if profile.uses_world:
        return world_stories(profile, n), []
    if not profile.data.vist_sis_json or not profile.data.vist_images:
        raise ValueError("profile.data.vist_sis_json and vist_images must name the VIST SIS file and images")
    stories, skipped = sis_stories(profile.resolve(profile.data.vist_sis_json), profile.resolve(profile.data.vist_images), 256)
    return stories[:n], skipped
