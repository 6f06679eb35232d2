"""Generate or retrieve: collecting the judged decision set and training GILL's decision head (notebook 05).

- `collect`: generated + retrieved image + [IMG0] state per prompt, resumable;
- `judges`: 5 simulated annotators, the paper's confidence rule, agreement statistics;
- `classifier`: train / evaluate / save / find the decision head;
- `data`: the prompts (ShapeStories) or the published PartiPrompts decision TSV;
- `stage`: the notebook's steps end to end.

Showing one image, running only the path the head chose, is `gill_lite.inference.GillPipeline.show_image`.
"""
