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
# # 03 · Generation: the GILLMapper
#
# The 8 `[IMG]` hidden states live in the LM's space; the image generator (Stable Diffusion v1.5 in the paper,
# a tiny pixel-space diffusion model here) is conditioned on its own text encoder's output, a `max_length x width`
# sequence (77 x 768 for SD). The **GILLMapper** translates between them:
#
#     (8 [IMG] states + their input embeddings) -> Linear(LM hidden -> d) -> Transformer encoder-decoder
#     reading max_length learned queries -> Linear(d -> text width)
#
# trained to minimise the per-token Euclidean distance to the generator's text-encoder output of the caption.
# No image is ever generated during training: the generator's own text encoder is the teacher, and its outputs
# are computed once and cached. At inference the mapper's output goes to the generator as `prompt_embeds`.
#
# This notebook goes on training the mapper (begun beside the `[IMG]` rows in 02, from its checkpoint) and
# compares images generated *through GILL* with the generator given the true caption (the ceiling GILL can
# reach), scored by the exact attribute probe.

# %% tags=["parameters"]
import os
PROFILE = os.environ.get("GILL_PROFILE", "tiny")  # ci | tiny | paper; papermill -p PROFILE wins
N_EVAL = 64  # captions generated for the probe (x2 images: GILL and the baseline)
N_SHOW = 8

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
model, trained = notebook_stage(profile, "generation", parts)

# %%
fig = loss_curve(stage_log(profile, trained), title=f"{trained} loss")
save_figure(fig, profile, "03_loss", stage="generation")
fig

# %% [markdown]
# ## Generated through GILL next to the generator's own
# Rows: the true image, GILL (caption -> LM -> `[IMG]` states -> mapper -> generator), the generator given the caption.

# %%
from gill_lite.evaluate.stages import generation_accuracy

test = make_split("test", min(N_EVAL, w.n_test), w.seed, w.heldout_fraction, w.image_size)
result = generation_accuracy(model, parts.generator, test, seed=0)
fig = image_rows({"truth": [e.image(w.image_size) for e in test[:N_SHOW]],
                  "GILL": result["gill_images"][:N_SHOW], "generator": result["ceiling_images"][:N_SHOW]},
                 titles=[e.caption for e in test[:N_SHOW]])
save_figure(fig, profile, "03_generated_vs_sd", stage="generation")
fig

# %%
for name in ("gill", "ceiling"):
    print(f"{name:8s}", {k: round(v, 3) for k, v in result[name].items()})
record_results(profile, "generation", {"probe_accuracy_gill": result["gill"],
                                       "probe_accuracy_generator_from_caption": result["ceiling"],
                                       "n_images": len(test)})
