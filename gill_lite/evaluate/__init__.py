"""GILL's evaluations (paper section 4): VIST contextual generation and retrieval, dialogue-conditioned
generation, and their metrics. Each takes GILL as a `gill_lite.inference.GillPipeline`.

- `contexts`: each setting's model input, built as the published evaluation builds it;
- `metrics`: CLIP similarity, recall@k, bootstrap intervals, probe attribute accuracy, LPIPS (paper);
- `vist`: the two VIST protocols on any list of `stories.EvalStory`; `run.evaluate_vist` runs both;
- `dialogue` / `visdial`: the VisDial experiment (ShapeStories Q/A at tiny, VisDial v1.0 at paper);
- `tables`, `pictures`: what notebook 06 shows; `cli`: ``gill-lite eval vist``.
"""
