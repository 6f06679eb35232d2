"""LM texts, dialogues, decision prompts and the closed vocabulary."""
import re

import numpy as np

from gill_lite.backbones.recipes import standin_recipe
from gill_lite.config import get_profile
from gill_lite.world.attributes import Scene, Shape
from gill_lite.world.corpus import heldout_shapes, train_shapes
from gill_lite.world.dialogue import make_dialogue, make_dialogues
from gill_lite.world.prompts import DecisionPrompt, make_decision_prompts
from gill_lite.world.stories import make_stories
from gill_lite.world.text import lm_pretraining_texts, word_tokens, world_vocabulary

CI = get_profile("ci").world
LM_RECIPE = standin_recipe(get_profile("ci")).lm
N_LM_STORIES, LM_FRAMES = LM_RECIPE.n_stories, LM_RECIPE.story_frames  # the LM stand-in's stories


def test_word_tokens():
    assert word_tokens("It's RED.\nQ: big?") == ["it", "'", "s", "red", ".", "q", ":", "big", "?"]
    assert word_tokens("a b") == re.findall(r"[a-z]+|[^\sa-z]", "a b")


def test_every_world_text_is_in_the_vocabulary():
    vocab = world_vocabulary()
    assert vocab == world_vocabulary() and len(vocab) == len(set(vocab))  # deterministic, no repeats
    texts = lm_pretraining_texts(CI, N_LM_STORIES, LM_FRAMES)
    texts += [p.text for p in make_decision_prompts(300)] + [s.text for s in make_stories(100)]
    unknown = {t for text in texts for t in word_tokens(text)} - set(vocab)
    assert not unknown


def test_every_restyled_caption_is_in_the_vocabulary_and_fits_the_img_sequence():
    """The [IMG] side's restyled captions (`world.captions.STYLE_TEMPLATES`) use only words the stand-ins'
    tokenizers know (an unknown word reads as <unk>) and are never cut by `TrainConfig.max_text_len`, which keeps
    room for the 8 [IMG] tokens: the longest fields filled in, every form fits."""
    from gill_lite.world.captions import STYLE_TEMPLATES, WHERE

    vocab = set(world_vocabulary())
    train = get_profile("tiny").train
    room = train.max_text_len - 1 - train.n_img_tokens  # BOS, the caption, [IMG0..7] (`train.steps.img_inputs`)
    for template in STYLE_TEMPLATES:
        for position, where in WHERE.items():
            text = template.format(kind="triangle", colour="yellow", size="small", where=where, position=position,
                                   start=WHERE["bottom right"], direction="right")
            tokens = word_tokens(text)
            assert not set(tokens) - vocab, (template, set(tokens) - vocab)
            assert len(tokens) <= room, (text, len(tokens))


def test_a_restyled_step_ends_where_the_image_shows_the_shape():
    """The step forms ("A red circle at the top. It moves down.") describe one image: where the shape ends up.
    For every shape, the named start moved one step in the named direction is the shape's position, and a step
    off the grid is never drawn."""
    from gill_lite.world.attributes import all_shapes, shifted_position
    from gill_lite.world.captions import WHERE, restyle_caption

    phrase_to_position = {v: k for k, v in WHERE.items()}
    phrases = "|".join(sorted(WHERE.values(), key=len, reverse=True))  # "at the top left" before "at the top"
    pattern = re.compile(rf"({phrases})\..*(?:moves|steps) (up|down|left|right)\.")
    seen = 0
    for i, shape in enumerate(list(all_shapes()) * 20):
        text = restyle_caption(shape, np.random.default_rng([3, i]))
        found = pattern.search(text.lower()) if text else None
        if found:
            seen += 1
            assert shifted_position(phrase_to_position[found.group(1)], found.group(2)) == shape.position, text
    assert seen > 100  # the forms are drawn
    assert shifted_position("top left", "up") is None and shifted_position("middle", "left") == "left"
    assert shifted_position("left", "left", -1) == "middle" and shifted_position("top", "down", -1) is None


def test_lm_texts_hold_captions_stories_dialogues_but_no_eval_story():
    texts = lm_pretraining_texts(CI, N_LM_STORIES, LM_FRAMES)
    assert len(texts) == CI.n_train + N_LM_STORIES + CI.n_dialogues
    assert any(t.startswith("Q:") or "\nQ: " in t for t in texts)
    eval_texts = {s.text for s in make_stories(CI.n_stories, CI.seed, "eval")}
    assert not eval_texts & set(texts)
    assert lm_pretraining_texts(CI, N_LM_STORIES, LM_FRAMES) == texts  # seeded


def test_dialogue_answers_come_from_the_scene():
    shape = Shape("circle", "red", "small", "top left")
    scene = Scene((shape,))
    for seed in range(20):
        for q, a in make_dialogue(scene, np.random.default_rng(seed)):
            if q.startswith("what colour"):
                assert a == "it is red."
            if q.startswith("where"):
                assert a == "it is at the top left."
            if q.startswith("how many"):
                assert a == "there is one."
            if q == "is the circle small?":
                assert a.startswith("yes")
            if q in ("is the circle large?", "is the circle blue?"):
                assert a.startswith("no")
    d = make_dialogues(30, seed=1)
    assert all(t.split("\n")[1].startswith("Q: ") for t in (x.text for x in d))
    assert [x.text for x in d] == [x.text for x in make_dialogues(30, seed=1)]
    assert any(len(x.scene.shapes) == 2 for x in d)


def test_two_objects_are_referred_to_unambiguously():
    scene = Scene((Shape("circle", "red", "small", "top"), Shape("circle", "blue", "large", "bottom")))
    for seed in range(30):
        for q, _ in make_dialogue(scene, np.random.default_rng(seed)):
            assert "the circle" not in q  # two circles: "the red circle"


def test_decision_prompts():
    prompts = make_decision_prompts(1600, seed=0)
    assert len(prompts) == 1600 and all(isinstance(p, DecisionPrompt) for p in prompts)
    held, seen = heldout_shapes(0, 0.15), set(train_shapes(0, 0.15))
    novel = [p for p in prompts if p.category == "novel"]
    assert 0.4 < len(novel) / len(prompts) < 0.6
    assert all(p.shape in held for p in novel)
    assert all(p.shape in seen for p in prompts if p.category == "corpus")
    assert len({p.text.split()[0] for p in prompts}) >= 5  # varied wording
    for p in prompts[:200]:
        assert p.shape.colour in p.text and p.shape.kind in p.text and p.shape.size in p.text
    assert make_decision_prompts(50, seed=0) == prompts[:50]
