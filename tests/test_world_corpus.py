"""The corpus and renderer: seeded, byte-identical, held-out combinations kept apart."""
import numpy as np
import pytest

from gill_lite.world.attributes import ATTRIBUTES, Shape, all_shapes
from gill_lite.world.corpus import heldout_shapes, make_example, make_split, render_images, train_shapes


def test_same_seed_same_bytes():
    a, b = make_split("train", 20, seed=1), make_split("train", 20, seed=1)
    assert [e.caption for e in a] == [e.caption for e in b]
    assert render_images(a).tobytes() == render_images(b).tobytes()
    assert make_example("train", 7, seed=1) == a[7]  # each example has its own seed
    assert [e.caption for e in make_split("train", 20, seed=2)] != [e.caption for e in a]


def test_heldout_split():
    held = heldout_shapes(0, 0.15)
    assert len(held) == round(0.15 * 216)
    assert set(train_shapes(0, 0.15)) | held == set(all_shapes())
    for attr in ATTRIBUTES:  # every single value still appears in training
        assert {getattr(s, attr) for s in train_shapes(0, 0.15)} == {getattr(s, attr) for s in all_shapes()}
    assert all(e.shape in held for e in make_split("heldout", 50))
    assert not {e.shape for e in make_split("train", 500)} & held


def test_captions_name_the_attributes():
    for e in make_split("val", 50):
        for attr in ("kind", "colour", "size"):
            assert getattr(e.shape, attr) in e.caption.lower()


def test_bad_input():
    with pytest.raises(ValueError, match="split"):
        make_example("nope", 0)
    with pytest.raises(ValueError, match="colour"):
        Shape("circle", "purple", "small", "top")
    assert render_images([], 32).shape == (0, 32, 32, 3)
    assert isinstance(render_images(make_split("val", 2)), np.ndarray)
