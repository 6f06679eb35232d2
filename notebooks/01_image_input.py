# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python (gill-lite)
#     language: python
#     name: gill-lite
# ---

# %% [markdown]
# # 01 · Image input: the visual prefix and the captioning loss
#
# GILL's first ability is to *read* images. A frozen image encoder (CLIP ViT-L/14 in the paper, a tiny CLIP here)
# gives one pooled vector per image (1024-d in the paper: the vector *before* CLIP's own projection). A single
# linear layer, the **visual prefix**, maps it to 4 input embeddings of the frozen LM:
#
#     Linear(image hidden -> 4 x LM hidden), reshaped to 4 tokens
#
# and the LM is trained, through these 4 vectors only, to continue `[4 visual tokens] BOS` with the caption
# (cross-entropy on the caption tokens). Everything else is frozen: the LM learns nothing, the prefix learns to
# speak its input language. GILL concatenates half of each batch in pairs
# (`[img a] BOS caption a [img b] caption b`, the second BOS removed), so the model sees more than one caption at
# a time; `paper` does (`profile.train.caption_pairs`). At `tiny` the captioning loss reads every example alone:
# our small LM never read two unrelated texts joined without `</s>`, so the prefix learned to cut off whatever
# came before it, a story's captions included (README, "Captioning without pairs"). The `[IMG]` losses still join
# pairs. And at `tiny` the BOS comes first, `BOS [4 visual tokens] caption` (`profile.train.bos_before_images`),
# as an image is read inside a story: after other tokens, and followed by text with no BOS between. Trained at the
# very first position, the prefix upset what the LM made of the captions after it (README, "This build").
#
# This notebook trains the prefix (or loads it), plots the loss, and captions images of **held-out attribute
# combinations** (never seen in any training caption). Because every image comes from the ShapeStories renderer,
# the generated captions can be checked attribute by attribute.

# %% tags=["parameters"]
import os
PROFILE = os.environ.get("GILL_PROFILE", "tiny")  # ci | tiny | paper; papermill -p PROFILE wins
N_SHOW = 12  # captioned images shown

# %%
# %matplotlib inline
from gill_lite.backbones import load_frozen_parts
from gill_lite.config import notebook_profile
from gill_lite.figures import image_grid, loss_curve, save_figure
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
model, trained = notebook_stage(profile, "captioning", parts)

# %%
fig = loss_curve(stage_log(profile, trained), title=f"{trained} loss")
save_figure(fig, profile, "01_loss", stage="captioning")
fig

# %% [markdown]
# ## Captions of held-out images
# The title is the greedy caption; the image's true caption is below it in brackets.

# %%
from gill_lite.evaluate.stages import caption_accuracy

heldout = make_split("heldout", w.n_heldout, w.seed, w.heldout_fraction, w.image_size)
accuracy, captions = caption_accuracy(model, heldout, w.image_size)
show = heldout[:N_SHOW]
fig = image_grid([e.image(w.image_size) for e in show],
                 [f"{c} [{e.caption}]" for c, e in zip(captions, show)], ncols=6, size=2.0)
save_figure(fig, profile, "01_captions", stage="captioning")
fig

# %% [markdown]
# ## How much can a linear prefix read from the image encoder?
# The prefix is one linear layer, so a linear probe on the frozen pooled vectors (trained on the training split's
# features, tested on the held-out images) is roughly the ceiling of the captions above, attribute by attribute.

# %%
from gill_lite.evaluate.stages import image_encoder_probe

probe = image_encoder_probe(profile, parts.image_encoder, heldout)
print("attribute accuracy of generated captions on", len(heldout), "held-out images:")
print("  captions    ", {k: round(v, 3) for k, v in accuracy.items()})
print("  linear probe", {k: round(v, 3) for k, v in probe.items()})
record_results(profile, "captioning", {"caption_accuracy_heldout": accuracy, "linear_probe_heldout": probe,
                                       "n_images": len(heldout)})
