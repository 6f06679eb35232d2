"""ShapeStories: a procedurally rendered world of captioned shapes and 5-frame stories, with ground truth."""
from .attributes import ATTRIBUTES, COLOURS, KINDS, PALETTE, POSITIONS, SIZES, VALUES, Scene, Shape, all_shapes
from .captions import caption_scene, caption_shape
from .corpus import Example, heldout_shapes, make_corpus, make_example, make_split, render_images, train_shapes
from .render import render_scene, render_shape
