"""Every seed stream of ShapeStories, in one place.

Each consumer of randomness draws from ``np.random.default_rng([seed, stream, index])``, so two consumers can
only share random numbers if they share a stream id. ``tests/test_world_streams.py`` checks the ids are
distinct and that no stream a training stage reads is an evaluation stream.
"""
from __future__ import annotations

from .corpus import SPLIT_STREAM

HELDOUT_CHOICE = 99  # `corpus.heldout_shapes` draws the held-out combinations from [seed, 99]

STREAMS: dict[str, int] = {
    **{f"corpus/{split}": sid for split, sid in SPLIT_STREAM.items()},  # 1..4, owned by corpus.py
    "stories/eval": 11,  # evaluation stories (the VIST stand-in): no training stage reads them
    "stories/lm": 12,  # stories only the language-model stand-in reads in its pretraining
    "stories/narration": 13,  # restatements and questions added to the "lm" stories (world/narration.py)
    "stories/length": 14,  # how many frames each "lm" story has (world/stories.py: lm_story_frames)
    "corpus/restyle": 5,  # which of GILL's corpus captions its [IMG] side reads restyled (world/captions.py)
    "prompts": 21,  # decision prompts (the PartiPrompts stand-in)
    "dialogue": 31,  # Q/A dialogues, read by the LM stand-in
    "judges": 41,  # reserved: the noisy judges of the decision set
    "heldout_choice": HELDOUT_CHOICE,
}

# What training stages read (GILL's stages: corpus train split; the LM stand-in: its texts).
TRAINING_STREAMS = ("corpus/train", "corpus/restyle", "stories/lm", "stories/narration", "stories/length", "dialogue")
# What only evaluation reads.
EVALUATION_STREAMS = ("corpus/val", "corpus/test", "corpus/heldout", "stories/eval", "prompts", "judges")


def stream_id(name: str) -> int:
    """The stream id of ``name`` (see `STREAMS`), with a clear error for unknown names."""
    if name not in STREAMS:
        raise KeyError(f"unknown seed stream {name!r}; known: {sorted(STREAMS)}")
    return STREAMS[name]
