"""The paper's published numbers (Koh, Fried and Salakhutdinov 2023; gill_spec.md), in one place.

Every module that puts the paper's number beside ours reads it from here: the VIST tables and their
``results.json`` entries (`gill_lite.evaluate`), the decision notebook and its plots, and the report
(`gill_lite.report`). Fractions, not percent (R@1 8.8% -> 0.088).
"""
from __future__ import annotations

# Table 1 (VIST contextual image generation): CLIP similarity of the generated last image to the true one,
# by "<model>/<setting>" (`gill_lite.evaluate.contexts.SETTINGS`; "sd" is Stable Diffusion alone)
VIST_CLIP_SIMILARITY = {
    "sd/last_caption": 0.592,
    "sd/captions": 0.598,
    "gill/last_caption": 0.581,
    "gill/captions": 0.612,
    "gill/captions_images": 0.641,
}

# Table 2 (VIST contextual image retrieval): recall@1 of the true last image
VIST_RECALL_AT_1 = {"clip_text/captions": 0.088, "fromage/captions_images": 0.182, "gill/captions_images": 0.203}

# The orderings those tables show, as (higher, lower) pairs of result names
VIST_ORDERINGS = (
    ("gill/captions_images", "gill/captions"),
    ("gill/captions", "gill/last_caption"),
    ("gill/captions", "sd/captions"),
)

# The decision classifier's data (PartiPrompts, 5 annotators, the confidence rule): prompts judged, the
# confident labels, the dropped prompts, and the annotators' agreement F1 (the human ceiling)
DECISION_PROMPTS = 1632
DECISION_COUNTS = {"gen": 592, "ret": 319, "dropped": 1632 - (592 + 319)}
ANNOTATOR_F1 = 0.851
