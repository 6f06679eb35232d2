"""GILL's evaluations (paper section 4): VIST contextual generation and retrieval, dialogue-conditioned
generation, the stage metrics of notebooks 01-04, and their metrics. Each takes GILL as a
`gill_lite.inference.GillPipeline` (the stage metrics and the chain: its `GillModel`).

- `contexts`: each setting's model input, built as the published evaluation builds it;
- `metrics`: CLIP similarity, recall@k, bootstrap intervals, probe attribute accuracy, LPIPS (paper);
- `vist`: the two VIST protocols on any list of `stories.EvalStory`; `vist.evaluate_vist` runs both,
  `vist.evaluate_vist_file` on a SIS file (``gill-lite eval vist``);
- `stories`: the evaluation stories (ShapeStories' "eval" stream, or a SIS file and its images);
- `dialogue` / `visdial`: the VisDial experiment (ShapeStories Q/A at tiny, VisDial v1.0 at paper);
- `stages`: what each GILL stage learnt (captions, ``[IMG0]`` emission, generation, retrieval), notebooks 01-04;
- `chain`: the context chain, link by link, against the story's information ceiling;
- `tables` (Markdown tables and the metrics results.json records) and `figures` (pictures): what notebook 06 shows.
"""
