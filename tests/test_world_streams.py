"""Keeping the experiment honest: seed streams never collide, evaluation data never reaches training."""
from gill_lite.backbones.recipes import standin_recipe
from gill_lite.config import get_profile
from gill_lite.world.corpus import SPLIT_STREAM, heldout_shapes, make_corpus
from gill_lite.world.prompts import make_decision_prompts
from gill_lite.world.stories import STORY_STREAMS, make_lm_stories, make_stories
from gill_lite.world.streams import EVALUATION_STREAMS, STREAMS, TRAINING_STREAMS, stream_id
from gill_lite.world.text import lm_pretraining_texts

LM_RECIPE = standin_recipe(get_profile("ci")).lm
N_LM_STORIES, LM_FRAMES = LM_RECIPE.n_stories, LM_RECIPE.story_frames  # the stories the ci LM stand-in reads


def test_stream_ids_are_distinct_and_documented():
    assert len(set(STREAMS.values())) == len(STREAMS)
    assert all(STREAMS[f"corpus/{k}"] == v for k, v in SPLIT_STREAM.items())
    assert not set(TRAINING_STREAMS) & set(EVALUATION_STREAMS)
    assert set(TRAINING_STREAMS) | set(EVALUATION_STREAMS) | {"heldout_choice"} == set(STREAMS)
    assert all(s in STREAMS for s in STORY_STREAMS.values())
    assert STORY_STREAMS["eval"] in EVALUATION_STREAMS and STORY_STREAMS["lm"] in TRAINING_STREAMS


def test_unknown_stream_is_an_error():
    import pytest

    with pytest.raises(KeyError, match="known"):
        stream_id("nope")


def test_heldout_combinations_never_in_training_corpus_or_lm_captions():
    world = get_profile("ci").world
    held = heldout_shapes(world.seed, world.heldout_fraction)
    assert held
    corpus = make_corpus(world)
    for split in ("train", "val", "test"):
        assert not {e.shape for e in corpus[split]} & held, split
    assert {e.shape for e in corpus["heldout"]} <= held
    # the LM's caption part is exactly the train split's captions
    texts = lm_pretraining_texts(world, N_LM_STORIES, LM_FRAMES)
    assert texts[: world.n_train] == [e.caption for e in corpus["train"]]


def test_training_streams_never_produce_evaluation_data():
    world = get_profile("ci").world
    eval_stories = make_stories(world.n_stories, world.seed, "eval")
    lm_stories = make_lm_stories(N_LM_STORIES, world.seed, world.image_size, LM_FRAMES)
    assert not {s.text for s in eval_stories} & {s.text for s in lm_stories}
    assert all(s.id.startswith("eval-") for s in eval_stories)
    texts = set(lm_pretraining_texts(world, N_LM_STORIES, LM_FRAMES))
    assert not {s.text for s in eval_stories} & texts
    # novel decision prompts ask for combinations no training image shows
    train = {e.shape for e in make_corpus(world)["train"]}
    novel = {p.shape for p in make_decision_prompts(world.n_decision_prompts, world.seed) if p.category == "novel"}
    assert novel and not novel & train


def test_no_evaluation_story_or_image_reaches_the_lm_or_gill():
    """The LM reads text only (no image, no [IMG] token) and never an evaluation story, whole or as a narrated
    sequence of its captions; GILL's training captions hold no story at all."""
    from gill_lite.train.data import world_caption_set

    profile = get_profile("ci")
    world = profile.world
    texts = lm_pretraining_texts(world, N_LM_STORIES, LM_FRAMES)
    assert all(isinstance(t, str) for t in texts) and not any("[IMG" in t for t in texts)
    eval_stories = make_stories(world.n_stories, world.seed, "eval")
    joined = "\n".join(texts)
    assert not any(" ".join(s.captions) in joined for s in eval_stories)
    gill = world_caption_set(profile)
    assert not {s.text for s in eval_stories} & (set(gill.captions) | set(gill.img_texts))
    assert all(c.count(".") <= 2 for c in gill.captions)  # captions of one image, never a five-sentence story
    # the [IMG] side's action forms say what one shape did in the world's verbs ("It becomes small."), as a
    # story's event does, but never after a story's caption, so no two sentences of a story are ever read
    gill_texts = "\n".join(gill.img_texts)
    assert not any(f"{a} {b}" in gill_texts for s in eval_stories for a, b in zip(s.captions, s.captions[1:]))
    events = {c for s in eval_stories for c in s.captions[1:]}
    assert not any(t.split(". ")[0].rstrip(".") + "." in events for t in gill.img_texts)  # a description opens each


def test_gill_img_side_reads_restyled_captions_of_the_same_shapes():
    """A `RESTYLE_P` share of the single-object train captions is restyled for the [IMG] side, naming the same
    four attributes (an action form names the position where the action ends, or a step to it); the captions themselves
    (captioning, the generation targets), the other splits and the LM's text are as they were, and the
    restyling is seeded."""
    from gill_lite.train.data import world_caption_set
    from gill_lite.world.captions import RESTYLE_P, WHERE

    profile = get_profile("ci")
    train = world_caption_set(profile)
    canonical = make_corpus(profile.world)["train"]
    assert train.captions == [e.caption for e in canonical]
    styled = [(t, e) for t, e in zip(train.img_texts, canonical) if t != e.caption]
    single = sum(len(e.scene.shapes) == 1 for e in canonical)
    assert abs(len(styled) / single - RESTYLE_P) < 0.1
    for text, example in styled:
        assert len(example.scene.shapes) == 1
        words = text.lower()
        shape = example.shape
        assert all(v in words for v in (shape.kind, shape.colour, shape.size)), text
        # the action's end, or a step to it from where it started (test_world_text checks where a step ends)
        stepped = any(f"{verb} {d}." in words for verb in ("moves", "steps") for d in ("up", "down", "left", "right"))
        assert WHERE[shape.position] in words or f"to the {shape.position}." in words or stepped, text
    assert world_caption_set(profile).img_texts == train.img_texts  # seeded
    test = world_caption_set(profile, "test")
    assert test.img_texts == test.captions
    lm_text = "\n".join(lm_pretraining_texts(profile.world, N_LM_STORIES, LM_FRAMES))
    assert not any(t in lm_text for t, _ in styled)  # the LM stand-in never read a restyled caption

