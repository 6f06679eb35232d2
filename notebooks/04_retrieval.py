# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python (gill-lite)
#     language: python
#     name: gill-lite
# ---

# %% [markdown]
# # 04 · Retrieval: contrastive heads and the index
#
# GILL can also *retrieve* an existing image. Two linear heads map the `[IMG0]` hidden state
# (`Linear(LM hidden -> 256)`) and the image encoder's pooled vector (`Linear(image hidden -> 256)`) into one
# L2-normalised space, trained with a symmetric InfoNCE loss over the whole batch (all-gathered across GPUs)
# with a learnable temperature (initial logit scale ln(1/0.07), as CLIP).
#
# The image side is applied once to a collection: the **retrieval index** (safetensors: embeddings + ids). A
# query is any context followed by `[IMG0..7]`; its `[IMG0]` embedding is scored against the index.
#
# This notebook goes on training the heads, begun beside the `[IMG]` rows in stage 02 (from the 03 checkpoint, so
# the result holds the whole model), indexes a pool of fresh test images, and measures text-to-image recall@k. A caption names only the attributes, and a pool holds
# several renders of the same attributes (differing in a few pixels of jitter), so even a perfect retriever ties:
# the *oracle ceiling* printed beside each recall is the expected recall of one that knows the attributes exactly.

# %% tags=["parameters"]
import os
PROFILE = os.environ.get("GILL_PROFILE", "tiny")  # ci | tiny | paper; papermill -p PROFILE wins
N_QUERIES = 5  # queries shown
K = 5

# %%
# %matplotlib inline
from gill_lite.backbones import load_frozen_parts
from gill_lite.config import notebook_profile
from gill_lite.figures import image_rows, loss_curve, save_figure
from gill_lite.pipeline import record_results
from gill_lite.train import stage_log
from gill_lite.train.loop import notebook_stage
from gill_lite.world.corpus import make_split

profile = notebook_profile(PROFILE)
parts = load_frozen_parts(profile)
w = profile.world
print(profile.name, "| LM", parts.lm.config_name, "| image encoder", parts.image_encoder.config_name,
      "| generator", parts.generator.config_name)

# %%
model, trained = notebook_stage(profile, "retrieval", parts)

# %%
fig = loss_curve(stage_log(profile, trained), title=f"{trained} loss")
save_figure(fig, profile, "04_loss", stage="retrieval")
fig

# %% [markdown]
# ## Recall@k over a pool of held-out images
# Queries are the captions of the pool's images; the pool is the test split (fresh renders, never trained on), and the held-out combinations separately.

# %%
from gill_lite.evaluate.stages import retrieval_ceiling, retrieval_recall

pool = make_split("test", min(profile.eval.retrieval_pool or w.n_test, w.n_test), w.seed, w.heldout_fraction, w.image_size)
novel = make_split("heldout", w.n_heldout, w.seed, w.heldout_fraction, w.image_size)
recall = retrieval_recall(model, pool, profile.eval.recall_at, w.image_size)
recall_novel = retrieval_recall(model, novel, profile.eval.recall_at, w.image_size)
ceiling, ceiling_novel = retrieval_ceiling(pool, profile.eval.recall_at), retrieval_ceiling(novel, profile.eval.recall_at)
print(f"pool of {len(pool)} test images:", recall, "| oracle ceiling:", ceiling)
print(f"pool of {len(novel)} held-out-combination images:", recall_novel, "| oracle ceiling:", ceiling_novel)
record_results(profile, "retrieval", {"recall_test_pool": recall, "test_pool_size": len(pool), "ceiling_test_pool": ceiling,
                                      "recall_heldout_pool": recall_novel, "heldout_pool_size": len(novel),
                                      "ceiling_heldout_pool": ceiling_novel})

# %% [markdown]
# ## Top-k retrievals
# Each row: a query caption and its top-k images from the index (saved as safetensors next to the checkpoint).

# %%
import numpy as np
from gill_lite.inference import GillPipeline

pipe = GillPipeline(model, parts, profile=profile)  # this stage's GILL, its frozen parts and an index of the pool
pipe.index = pipe.build_index(np.stack([e.image(w.image_size) for e in pool]), [e.id for e in pool])
pipe.index.save(profile.run_dir / "gill" / "retrieval" / "index_test.safetensors")
queries = pool[:N_QUERIES]
hits = pipe.retrieve(pipe.img_states_batch([q.caption for q in queries]), k=K)
fig = image_rows({f"{j + 1}. {q.caption}": list(pipe.index_images([i for i, _ in row]))
                  for j, (q, row) in enumerate(zip(queries, hits))},
                 titles=[f"top {j + 1}" for j in range(K)])
save_figure(fig, profile, "04_top_k", stage="retrieval")
fig

# %% [markdown]
# ## The joint run: every part learns from every loss
# Until now each stage trained its parts on its losses, and the `[IMG]` rows were shaped by stage 02 alone, in 200
# steps, before the mapper and the heads had learned much. In the paper all four losses are summed at every step,
# so the rows go on learning from the generation and retrieval losses, through the frozen LM: they learn to *gather* what the mapper and the heads need from the context before them,
# not only to be predicted after a caption. With pairs of captions in every loss (`BOS caption_a [IMG0..7]
# caption_b [IMG0..7]`), that is where GILL learns that the `[IMG]` states after earlier context must describe the
# latest caption, the skill a story needs (notebook 06). `train.joint_from` starts this run from the staged
# chain (the `paper` profile trains it from scratch, as published); it is the GILL that notebooks 05-07 use.

# %%
from gill_lite.train import load_gill

gill = load_gill(profile, parts)  # the profile's final stage: the joint run here (loaded if finished)
final = profile.train.final_stage
fig = loss_curve(stage_log(profile, final), title=f"{final} losses")
save_figure(fig, profile, "04_joint_loss", stage="retrieval")
fig
