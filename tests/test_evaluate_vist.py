"""The VIST protocols with a fake model: inputs built as the published evaluation builds them, same seeds
in every setting, retrieval exclusions, results summary."""
import numpy as np
import pytest

from gill_lite.evaluate.contexts import SETTINGS, baseline_prompt, build_context, dialogue_text
from gill_lite.evaluate.stories import EvalStory, from_world_story
from evaluate_fakes import FakePipeline, Flatten, _img, _story
from gill_lite.evaluate.vist import (
    ceilings, duplicate_targets, evaluate_generation, evaluate_retrieval, retrieval_pool,
)


def test_contexts_follow_the_published_interleaving():
    caps = ["c1", "c2", "c3", "c4", "c5"]
    imgs = [_img(k) for k in range(5)]
    assert build_context(caps, imgs, "last_caption") == ["c5"]
    assert build_context(caps, imgs, "captions") == caps
    ctx = build_context(caps, imgs, "captions_images")
    # caption1, image1, ..., caption4, image4, caption5 (GILL's generate_vist_images.py / FROMAGe's eval)
    assert [c if isinstance(c, str) else int(np.argmax(c[..., 0])) for c in ctx] == [
        "c1", int(np.argmax(imgs[0][..., 0])), "c2", int(np.argmax(imgs[1][..., 0])), "c3",
        int(np.argmax(imgs[2][..., 0])), "c4", int(np.argmax(imgs[3][..., 0])), "c5"]
    assert len(ctx) == 9 and all(ctx[i] is imgs[i // 2] for i in (1, 3, 5, 7))  # the last image never enters
    assert not any(c is imgs[4] for c in ctx)
    assert baseline_prompt(caps, "captions") == "c1 c2 c3 c4 c5"
    assert baseline_prompt(caps, "last_caption") == "c5"
    with pytest.raises(ValueError):
        build_context(caps, imgs, "everything")
    with pytest.raises(ValueError):
        baseline_prompt(caps, "captions_images")


def test_dialogue_text_matches_gills_visdial_format():
    assert dialogue_text([("is it red", "yes"), ("where is it?", "at the top.")]) == (
        "Q: is it red?\nA: yes\nQ: where is it?\nA: at the top.")


def test_generation_uses_the_same_seeds_in_every_setting_and_scores_them():
    stories = [_story(i) for i in range(5)]
    pipe = FakePipeline(stories)
    res = evaluate_generation(pipe, Flatten(), stories, seed=100, batch_size=2, progress=False)
    assert set(res.clip) == {"gill/last_caption", "gill/captions", "gill/captions_images", "sd/last_caption", "sd/captions"}
    # 3 chunks (2, 2, 1) per setting; the chunk starting at story i always gets seed 100 + i
    per_setting = [pipe.seeds[i : i + 3] for i in range(0, len(pipe.seeds), 3)]
    assert len(per_setting) == 5
    for calls in per_setting:
        assert [(s, n) for _, s, n in calls] == [(100, 2), (102, 2), (104, 1)]
    # the oracle sees images only in setting (c): similarity 1 there, lower elsewhere
    assert res.clip["gill/captions_images"] == pytest.approx(np.ones(5))
    assert (res.clip["gill/captions"] < 0.5).all()
    assert pipe.prompts[:5] == [s.captions[-1] for s in stories]
    assert pipe.prompts[5:] == [" ".join(s.captions) for s in stories]
    summary = res.summary(n_boot=50)
    assert summary["settings"]["gill/captions_images"]["paper_clip_similarity"] == 0.641
    ordering = {(o["higher"], o["lower"]): o for o in summary["orderings"]}
    assert ordering[("gill/captions_images", "gill/captions")]["paired_holds"]
    assert ordering[("gill/captions_images", "gill/captions")]["separated_intervals"]
    assert not ordering[("gill/captions", "gill/last_caption")]["paired_holds"]  # both 0: no claim
    assert res.examples["gill/captions_images"].shape == (4, 8, 8, 3)


def test_retrieval_excludes_the_storys_own_earlier_images():
    # story 0's third image is identical to its last one: only the exclusion keeps the target first
    imgs0 = [_img(k) for k in range(5)]
    imgs0[2] = imgs0[4].copy()
    stories = [_story(0, imgs0)] + [_story(i) for i in range(1, 4)]
    pool, targets, excluded = retrieval_pool(stories)
    assert len(pool) == 20 and list(targets) == [4, 9, 14, 19]
    assert excluded[1] == [5, 6, 7, 8]
    pipe = FakePipeline(stories)
    res = evaluate_retrieval(pipe, Flatten(), stories, progress=False)
    assert list(res.ranks["gill/captions_images"]) == [0, 0, 0, 0]
    assert res.recall()["gill/captions_images"][1] == 1.0
    # captions only: the fake knows nothing without images; the text-only CLIP baseline is always there
    assert res.recall()["gill/captions"][1] < 1.0
    assert "clip_text/captions" in res.ranks
    assert all(t not in excluded[q] for q, t in enumerate(targets))
    assert res.top["gill/captions_images"][0][0] == 4  # the excluded twin (index 2) never shows up
    assert 2 not in res.top["gill/captions_images"][0]
    assert res.duplicate_targets == 0
    # a twin in ANOTHER story is a real competitor and is counted
    imgs1 = [_img(10 + k) for k in range(5)]
    imgs1[0] = imgs0[4].copy()
    stories[1] = _story(1, imgs1)
    pool, targets, excluded = retrieval_pool(stories)
    assert duplicate_targets(pool, targets, excluded) == 1


def test_retrieval_pool_has_unique_ids_and_excludes_by_id():
    """As FROMAGe's eval_vist_retrieval.py: one candidate per image id; context images excluded by id, so a
    photo shared with another story of the album is excluded there too and counted once."""
    stories = [_story(i) for i in range(3)]
    shared = EvalStory("s9", list(stories[0].captions), stories[1].images.copy(),
                       [stories[1].image_ids[0], *stories[2].image_ids[1:4], "own-last"])
    stories.append(shared)
    pool, targets, excluded = retrieval_pool(stories)
    assert len(pool) == 16  # 15 ids of stories 0-2 and one new id
    assert targets[3] == 15 and excluded[3] == [5, 11, 12, 13]
    assert list(targets[:3]) == [4, 9, 14]


def test_world_stories_carry_shape_and_ceilings():
    from gill_lite.world.stories import make_stories

    stories = [from_world_story(s, 32) for s in make_stories(30, seed=0)]
    assert stories[0].images.shape == (5, 32, 32, 3)
    assert stories[0].shape == make_stories(1, seed=0)[0].final
    c = ceilings(stories)
    assert set(c) == set(SETTINGS)
    for setting in SETTINGS:
        for a, v in c[setting]["determined"].items():
            assert 0 <= v <= c[setting]["best_expected"][a] <= 1
    # more context never knows less (the world's design)
    assert c["last_caption"]["determined"]["all"] <= c["captions"]["determined"]["all"] <= c["captions_images"]["determined"]["all"]
    assert c["captions_images"]["determined"]["all"] == 1.0


def test_full_summary_tables_and_recorded_figures(tmp_path, monkeypatch):
    from gill_lite.config import get_profile
    from gill_lite.evaluate.vist import evaluate_vist
    from gill_lite.evaluate.tables import attribute_table, generation_table, orderings_table, retrieval_table, vist_metrics
    from gill_lite.world.stories import make_stories

    stories = [from_world_story(s, 32) for s in make_stories(8, seed=0)]

    class Parts:
        eval_clip = image_encoder = Flatten(32 * 32 * 3)

    cfg = get_profile("ci").eval
    summary, gen, ret = evaluate_vist(FakePipeline(stories, Parts()), stories, cfg, skipped=[{"story": "x", "reason": "y"}],
                                      progress=False)
    assert summary["counts"] == {"stories": 8, "skipped": 1, "retrieval_pool": 40}
    assert summary["stories_per_second"] > 0
    g = generation_table(summary)
    assert "0.641" in g and "GILL, 5 captions + 4 images" in g and "100%" in g
    assert "colour (ceiling)" in attribute_table(summary)
    assert "20.3%" in retrieval_table(summary) and "text-only CLIP" in retrieval_table(summary)
    assert "holds" in orderings_table(summary)
    figures = vist_metrics(summary)
    assert figures["clip_similarity"]["gill_captions_images"]["paper"] == 0.641
    assert figures["retrieval"]["gill_captions_images_R1"]["value"] == 1.0
    assert figures["retrieval"]["gill_captions_images_R1"]["paper"] == 0.203
    # the same-shape recall and both GILL / text-only CLIP ratios are recorded beside the exact-image ones
    eq = figures["retrieval_equivalent"]
    assert eq["equivalence"] == "same shape" and eq["gill_captions_images_R1"]["value"] == 1.0
    assert "paper" not in eq["gill_captions_images_R1"]
    for block, ratio in ((summary["retrieval"], figures["retrieval"]), (summary["retrieval"]["equivalent"], eq)):
        clip = block["settings"]["clip_text/captions"]["R@1"]["mean"]
        assert ratio.get("gill_over_clip_text_R1") == (1.0 / clip if clip > 0 else None)
    monkeypatch.setenv("GILL_RUNS_DIR", str(tmp_path))
    from gill_lite.pipeline import record_results

    record_results(get_profile("ci"), "vist", figures)  # JSON-clean: no NaN, no numpy types left


def test_story_results_figure_has_a_row_per_story():
    from gill_lite.evaluate.figures import story_results_figure

    stories = [_story(i) for i in range(3)]
    pipe = FakePipeline(stories)
    gen = evaluate_generation(pipe, Flatten(), stories, progress=False, n_examples=2)
    ret = evaluate_retrieval(pipe, Flatten(), stories, progress=False)
    fig = story_results_figure(stories, gen, ret, n=4)
    assert len([ax for ax in fig.axes if ax.images]) == 2 * (5 + 5 + 1)


def test_oracle_prompt_is_the_true_description_of_the_last_frame():
    from gill_lite.world.captions import caption_shape
    from gill_lite.world.stories import make_stories

    stories = [from_world_story(s, 32) for s in make_stories(3, seed=0)]
    pipe = FakePipeline(stories)
    res = evaluate_generation(pipe, Flatten(32 * 32 * 3), stories, progress=False, oracle=True)
    assert "sd/oracle" in res.clip and "sd/oracle" in res.attributes
    assert pipe.prompts[-3:] == [caption_shape(s.shape, 0) for s in stories]


def test_same_shape_recall_counts_images_of_the_same_shape_in_other_stories():
    from gill_lite.world.stories import make_stories

    stories = [from_world_story(s, 32) for s in make_stories(12, seed=0)]

    pipe = FakePipeline(stories)
    res = evaluate_retrieval(pipe, Flatten(32 * 32 * 3), stories, progress=False)
    assert res.equivalence == "same shape"
    # the oracle finds the target itself: both recalls are perfect
    assert res.recall()["gill/captions_images"][1] == 1.0
    assert (res.ranks_equivalent["gill/captions_images"] <= res.ranks["gill/captions_images"]).all()
    pool, targets, excluded = retrieval_pool(stories)
    from gill_lite.evaluate.vist import equivalent_candidates

    kind, eq = equivalent_candidates(stories, pool, targets, excluded)
    shapes = [sh for s in stories for sh in s.frame_shapes]
    for q, cands in enumerate(eq):
        assert all(shapes[c] == stories[q].shape and c not in excluded[q] and c != targets[q] for c in cands)
    summary = res.summary(n_boot=20)
    assert summary["equivalent"]["equivalence"] == "same shape"
    # without known shapes, pixel-identical images are the equivalents
    for s in stories:
        s.frame_shapes = None
    assert equivalent_candidates(stories, pool, targets, excluded)[0] == "identical pixels"
