"""Plot helpers return matplotlib Figures with one axis per image."""
import numpy as np
import pytest
from matplotlib.figure import Figure

from gill_lite.figures import image_grid, story_strip


def test_image_grid_and_story_strip():
    images = np.zeros((5, 8, 8, 3), np.uint8)
    fig = image_grid(images, [f"t{i}" for i in range(5)], ncols=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert fig.axes[0].get_title() == "t0"
    strip = story_strip(images, ["c"] * 5, title="a story")
    assert isinstance(strip, Figure) and len(strip.axes) == 5
    with pytest.raises(ValueError):
        image_grid(images, ["only one"])
    with pytest.raises(ValueError):
        image_grid([])


def test_attribute_histograms():
    from gill_lite.figures import attribute_histograms
    from gill_lite.world.corpus import make_split

    fig = attribute_histograms({"train": [e.shape for e in make_split("train", 30)], "heldout": [e.shape for e in make_split("heldout", 10)]})
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert len(fig.axes[0].patches) == 2 * 3  # two groups x three kinds
