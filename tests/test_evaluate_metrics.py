"""Metrics of the VIST protocols on hand-made numbers."""
import numpy as np
import pytest

from gill_lite.evaluate.metrics import (
    Interval, attribute_scores, bootstrap_ci, clip_similarity, cosine_rows, ordering_holds, paired_bootstrap_ci,
    recall_at_k, target_ranks,
)


class FlattenEncoder:
    """An 'evaluation CLIP' whose features are the flattened pixels: cosine similarity is checkable by hand."""

    def embed_images(self, images):
        x = np.asarray(images, np.float64).reshape(len(images), -1)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_recall_at_k_hand_made():
    scores = np.array([
        [0.9, 0.1, 0.2, 0.3],  # target 0 ranks first
        [0.9, 0.1, 0.2, 0.3],  # target 2 ranks third (0.9, 0.3 ahead)
        [0.5, 0.5, 0.1, 0.0],  # target 1 ties with 0: ties count against the target -> rank 2nd
    ])
    r = recall_at_k(scores, [0, 2, 1], ks=(1, 2, 3))
    assert r == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 3: pytest.approx(1.0)}
    assert list(target_ranks(scores, [0, 2, 1])) == [0, 2, 1]


def test_recall_exclusions_remove_candidates_but_never_the_target():
    scores = np.array([[0.9, 0.8, 0.1], [0.9, 0.8, 0.1]])
    assert recall_at_k(scores, [2, 2], ks=(1,))[1] == 0.0
    # excluding the two better candidates lifts the target to the top; excluding the target itself is ignored
    assert recall_at_k(scores, [2, 2], ks=(1,), exclude=[[0, 1], [0, 1, 2]])[1] == 1.0
    assert recall_at_k(scores, [2, 2], ks=(1, 2), exclude=[[0], [1]]) == {1: 0.0, 2: 1.0}


def test_constant_scores_give_zero_recall_at_1():
    assert recall_at_k(np.zeros((4, 10)), [0, 1, 2, 3], ks=(1,))[1] == 0.0


def test_recall_rejects_bad_shapes():
    with pytest.raises(ValueError):
        recall_at_k(np.zeros((3, 4)), [0, 1])


def test_clip_similarity_is_pairwise_cosine():
    a = np.zeros((3, 2, 2, 3), np.uint8)
    a[0, 0, 0] = 255
    a[1, 1, 1] = 255
    a[2] = 10
    b = a.copy()
    b[1] = 0
    b[1, 0, 0] = 255  # orthogonal to a[1]
    sims = clip_similarity(FlattenEncoder(), a, b)
    assert sims == pytest.approx([1.0, 0.0, 1.0])
    assert cosine_rows([[1, 0], [1, 1]], [[2, 0], [-1, -1]]) == pytest.approx([1.0, -1.0])
    with pytest.raises(ValueError):
        clip_similarity(FlattenEncoder(), a, b[:2])


def test_bootstrap_interval_contains_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.normal(0.5, 0.1, 20), n=500, seed=0)
    large = bootstrap_ci(rng.normal(0.5, 0.1, 2000), n=500, seed=0)
    assert small.low < small.mean < small.high
    assert (large.high - large.low) < (small.high - small.low) / 3
    assert large.low < 0.5 < large.high
    assert bootstrap_ci([1.0, 1.0, 1.0]).to_dict() == {"mean": 1.0, "low": 1.0, "high": 1.0, "n": 3}
    # seeded: same numbers twice
    assert bootstrap_ci(np.arange(10.0), n=200, seed=3) == bootstrap_ci(np.arange(10.0), n=200, seed=3)


def test_ordering_only_claimed_when_intervals_separate():
    assert ordering_holds(Interval(0.6, 0.58, 0.62, 100), Interval(0.5, 0.48, 0.52, 100))
    assert not ordering_holds(Interval(0.6, 0.50, 0.70, 100), Interval(0.5, 0.45, 0.55, 100))
    assert not ordering_holds(Interval(0.5, 0.48, 0.52, 100), Interval(0.6, 0.58, 0.62, 100))


def test_paired_bootstrap_sees_a_consistent_small_gain():
    rng = np.random.default_rng(1)
    base = rng.normal(0.5, 0.2, 200)
    better = base + 0.01  # overlapping unpaired intervals, but always better
    assert not ordering_holds(bootstrap_ci(better), bootstrap_ci(base))
    diff = paired_bootstrap_ci(better, base)
    assert diff.low > 0


def test_attribute_scores_on_renders():
    from gill_lite.world.attributes import Shape
    from gill_lite.world.render import render_shape

    a, b = Shape("circle", "red", "large", "middle"), Shape("square", "blue", "small", "top left")
    images = np.stack([render_shape(a), render_shape(b), np.zeros((32, 32, 3), np.uint8)])
    hits = attribute_scores(images, [a, b.replace(colour="green"), a])
    assert list(hits["all"]) == [1, 0, 0]
    assert list(hits["colour"]) == [1, 0, 0]
    assert list(hits["kind"]) == [1, 1, 0]  # a blank image scores nothing


def test_lpips_is_paper_only_and_says_how_to_install_it():
    import importlib.util

    from gill_lite.config import get_profile
    from gill_lite.evaluate.metrics import lpips_distance

    assert get_profile("paper").eval.lpips and not get_profile("tiny").eval.lpips
    if importlib.util.find_spec("lpips") is not None:
        pytest.skip("lpips is installed here; its weights would need a download")
    with pytest.raises(ImportError, match=r"gill-lite\[paper\]"):
        lpips_distance(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8))


def test_equivalent_candidates_count_as_the_answer():
    scores = np.array([[0.9, 0.5, 0.1, 0.7]])
    assert list(target_ranks(scores, [2])) == [3]
    # candidate 3 shows the same thing as the target: the best correct one ranks second
    assert list(target_ranks(scores, [2], equivalent=[[3]])) == [1]
    # an excluded candidate never counts, not even as an equivalent
    assert list(target_ranks(scores, [2], exclude=[[3]], equivalent=[[3]])) == [2]
    assert list(target_ranks(scores, [2], exclude=[[0]], equivalent=[[1]])) == [1]
