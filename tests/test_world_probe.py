"""The attribute probe reads renders exactly and stays right on noisy, blurry images."""
import numpy as np
import pytest
from PIL import Image, ImageFilter

from gill_lite.world.attributes import Scene, Shape
from gill_lite.world.corpus import make_split
from gill_lite.world.probe import attribute_accuracy, probe_image
from gill_lite.world.render import render_scene, render_shape


@pytest.fixture(scope="module")
def renders():
    examples = make_split("test", 500, seed=11)
    return np.stack([e.image(32) for e in examples]), [e.shape for e in examples]


def test_exact_on_fresh_renders(renders):
    acc = attribute_accuracy(*renders)
    assert all(acc[k] >= 0.99 for k in ("kind", "colour", "size", "position", "all")), acc


def test_tolerant_to_noise_and_blur(renders):
    images, shapes = renders[0][:200], renders[1][:200]
    rng = np.random.default_rng(0)
    noisy = np.clip(images + rng.normal(0, 20, images.shape), 0, 255).astype(np.uint8)
    blurred = np.stack([np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(0.7))) for i in images])
    for variant in (noisy, blurred):
        acc = attribute_accuracy(variant, shapes)
        assert acc["all"] >= 0.97, acc


def test_main_object_is_the_largest():
    big, small = Shape("square", "blue", "large", "left"), Shape("circle", "red", "small", "top right")
    assert probe_image(render_scene(Scene((small, big)), 32)) == big


def test_other_sizes_and_empty():
    shape = Shape("triangle", "yellow", "large", "bottom right")
    assert probe_image(render_shape(shape, 64)) == shape
    empty = np.zeros((32, 32, 3), np.uint8)
    assert probe_image(empty) is None
    acc = attribute_accuracy([empty, render_shape(shape, 32)], [shape, shape])
    assert acc == {"kind": 0.5, "colour": 0.5, "size": 0.5, "position": 0.5, "all": 0.5}
    wrong = attribute_accuracy([render_shape(shape.replace(colour="red"), 32)], [shape])
    assert wrong["colour"] == 0.0 and wrong["kind"] == 1.0 and wrong["all"] == 0.0
    with pytest.raises(ValueError):
        probe_image(np.zeros((32, 16, 3), np.uint8))
    with pytest.raises(ValueError):
        attribute_accuracy([empty], [])
