"""ShapeStories: a procedurally rendered world of captioned shapes and 5-frame stories, with ground truth."""
from .attributes import ATTRIBUTES, COLOURS, KINDS, PALETTE, POSITIONS, SIZES, VALUES, Scene, Shape, all_shapes
from .captions import caption_scene, caption_shape
from .corpus import Example, heldout_shapes, make_corpus, make_example, make_split, render_images, train_shapes
from .render import render_scene, render_shape
from .dialogue import Dialogue, make_dialogue, make_dialogues
from .probe import attribute_accuracy, probe_image
from .prompts import DecisionPrompt, make_decision_prompts
from .stories import Story, information_ceiling, make_stories, make_story
from .streams import STREAMS, stream_id
from .text import lm_pretraining_texts, word_tokens, world_vocabulary
