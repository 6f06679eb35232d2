"""Stories: the information structure is real (computed by reasoning), seeded, and eval-only."""
import numpy as np
import pytest

from gill_lite.world.attributes import ATTRIBUTES, VALUES
from gill_lite.world.stories import (IMAGE_ONLY, N_FRAMES, SETTINGS, _infer, _unknown, information_ceiling, lm_story_frames,
                                     make_lm_stories, make_stories, make_story)


@pytest.fixture(scope="module")
def stories():
    return make_stories(400, seed=0)


def test_story_shape(stories):
    s = stories[0]
    assert len(s.frames) == len(s.captions) == len(s.events) == 5
    assert s.images(32).shape == (5, 32, 32, 3) and s.images(32).dtype == np.uint8
    assert s.events[0] == "start"
    first = s.frames[0].main
    for word in (first.kind, first.colour, first.size):  # the first caption describes the character fully
        assert word in s.captions[0].lower()


def test_character_persists_and_events_are_consistent(stories):
    for s in stories:
        assert len({f.main.kind for f in s.frames}) == 1
        for prev, cur, event in zip(s.frames, s.frames[1:], s.events[1:]):
            changed = {a for a in ATTRIBUTES if getattr(prev.main, a) != getattr(cur.main, a)}
            expected = {"move_to": {"position"}, "move_rel": {"position"}, "move_hidden": {"position"},
                        "reveal": {"position"}, "grow": {"size"}, "shrink": {"size"}, "resize": {"size"},
                        "recolour": {"colour"}, "recolour_hidden": {"colour"}}[event]
            assert changed == expected, (s.id, event)


def test_image_only_events_only_in_middle_frames(stories):
    assert any(e in IMAGE_ONLY for s in stories for e in s.events)
    for s in stories:
        assert s.events[-1] not in IMAGE_ONLY and s.events[1] is not None


def test_known_is_correct_and_nested(stories):
    for s in stories:
        assert set(s.known["last_caption"]) <= set(s.known["captions"]) <= set(s.known["captions_images"])
        assert s.known["captions_images"] == list(ATTRIBUTES)


def test_information_ceiling_ordering(stories):
    c = information_ceiling(stories)
    assert set(c) == set(SETTINGS)
    assert c["last_caption"]["all"] < 0.2
    assert c["last_caption"]["all"] < c["captions"]["all"] < c["captions_images"]["all"] == 1.0
    assert 0.2 < c["captions"]["all"] < 0.8
    assert c["captions"]["kind"] == 1.0 and c["captions"]["colour"] < 1.0 and c["captions"]["position"] < 1.0


def test_reasoning_by_hand():
    b = _unknown()
    down = _infer(b, "move_rel", {"direction": "down"}, False, "circle")
    assert down["position"] == frozenset(VALUES["position"][3:])  # moving down leaves the top row empty
    grown = _infer(b, "grow", {}, True, "square")
    assert grown["size"] == {"large"} and grown["kind"] == {"square"} and len(grown["colour"]) == 4
    exact = {a: frozenset([v]) for a, v in zip(ATTRIBUTES, ("circle", "red", "small", "top left"))}
    hidden = _infer(exact, "recolour_hidden", {}, False, "circle")
    assert hidden["colour"] == {"green", "blue", "yellow"}
    resized = _infer(exact, "resize", {}, False, "circle")
    assert resized["size"] == {"large"}
    moved = _infer(_infer(exact, "move_hidden", {}, False, "circle"), "move_rel", {"direction": "right"}, False, "circle")
    assert len(moved["position"]) > 1


def test_determinism_and_streams():
    a, b = make_stories(5, seed=3), make_stories(5, seed=3)
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
    assert all(np.array_equal(x.images(32), y.images(32)) for x, y in zip(a, b))
    # a story depends on its own seed only, not on how many are drawn
    assert make_stories(8, seed=3)[4].to_dict() == a[4].to_dict()
    lm = make_stories(5, seed=3, stream="lm")
    assert [s.captions for s in lm] != [s.captions for s in a]
    assert make_stories(5, seed=4)[0].to_dict() != a[0].to_dict()
    with pytest.raises(ValueError, match="stream"):
        make_stories(1, stream="train")


def test_round_trip_dict(stories):
    from gill_lite.world.stories import Story

    assert Story.from_dict(stories[1].to_dict()) == stories[1]


def test_lm_stories_vary_in_length_and_share_their_opening_with_the_five_frame_story():
    """The LM stand-in's stories have `lm_story_frames` frames (seeded, every length of the range drawn), each a
    story of the same stream whose frames before the last are those of its five-frame version; the evaluation
    stories keep five."""
    frames = lm_story_frames(700, seed=0, frames=(2, 8))
    assert frames == lm_story_frames(700, seed=0, frames=(2, 8)) and set(frames) == set(range(2, 9))
    assert lm_story_frames(50, seed=1, frames=(2, 8)) != lm_story_frames(50, seed=0, frames=(2, 8))
    stories = make_lm_stories(40, 0, 32, (2, 8))
    five = make_stories(40, 0, "lm")
    for story, length, base in zip(stories, frames, five):
        assert len(story.frames) == len(story.captions) == len(story.events) == length
        assert story.id == base.id and story.events[-1] not in IMAGE_ONLY
        shared = min(length, N_FRAMES) - 1
        assert story.captions[:shared] == base.captions[:shared]
    assert [s.captions for s in make_lm_stories(40, 0, 32, (5, 5))] == [s.captions for s in five]  # five: make_stories
    assert all(len(s.frames) == N_FRAMES for s in make_stories(20, 0, "eval"))


def test_story_lengths_out_of_range_are_refused():
    with pytest.raises(ValueError, match="at least 2 frames"):
        make_story(0, n_frames=1)
    for bad in ((1, 5), (6, 5)):
        with pytest.raises(ValueError, match="2 <= low <= high"):
            lm_story_frames(3, seed=0, frames=bad)
