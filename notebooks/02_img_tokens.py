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
# # 02 · The `[IMG]` tokens
#
# To *produce* images, GILL adds 8 new tokens `[IMG0]..[IMG7]` to the LM's vocabulary. Only their 8 rows of the
# (tied) embedding matrix learn; every other row stays frozen (here the rows live in a small separate parameter
# substituted into the embedding lookup and the logits, so weight decay cannot touch the frozen rows, a quirk of
# the published code). After each step the 8 rows are rescaled to the mean norm of the frozen rows.
#
# The prediction loss: cross-entropy on `BOS caption [IMG0..7]` with labels on the caption and on `[IMG0]` only.
# The LM learns *when* an image belongs (after a caption-like text) by predicting `[IMG0]`; `[IMG1..7]` are never
# predicted: at inference they are appended as soon as `[IMG0]` is produced. Their hidden states carry the
# meaning the generation (03) and retrieval (04) stages read.
#
# Predicting `[IMG0]` never asks those states to *carry* the caption: nothing in that loss reads them. In the paper
# the rows also learn from the two losses that do, generation (03) and retrieval (04). So here the rows learn from
# all three, with the mapper and the retrieval heads learning beside them: with the prediction loss alone, a linear
# probe read the caption's colour from the `[IMG0]` state 0.87 of the time and test-pool R@1 fell to 0.12 of a 0.18
# ceiling; with all three, colour 1.00 and R@1 0.17 (README, "This build"). Stages 03 and 04 then go on training
# the mapper and the heads on the rows as they leave this stage.
#
# This notebook trains the rows (starting from the 01 checkpoint) and shows the LM choosing to emit `[IMG0]`.

# %% tags=["parameters"]
import os
PROFILE = os.environ.get("GILL_PROFILE", "tiny")  # ci | tiny | paper; papermill -p PROFILE wins

# %%
# %matplotlib inline
from gill_lite.backbones import load_frozen_parts
from gill_lite.config import notebook_profile
from gill_lite.figures import loss_curve, save_figure
from gill_lite.pipeline import record_results
from gill_lite.train import stage_log
from gill_lite.train.loop import notebook_stage
from gill_lite.world.corpus import make_split

profile = notebook_profile(PROFILE)
parts = load_frozen_parts(profile)
w = profile.world
print(profile.name, "| LM", parts.lm.config_name, "| image encoder", parts.image_encoder.config_name,
      "| generator", parts.generator.config_name)

# %% [markdown]
# ## What the `[IMG]` side reads
# CC3M's captions vary in form: several sentences, pronouns, an attribute here and another there, an action
# ("a dog runs to the ball"). Our corpus captions come from a few one-sentence templates, so at `tiny` the `[IMG]`
# losses (this stage, generation, retrieval) read three in four of the single-object captions restyled, some
# saying what the shape did ("A red circle on the left. It becomes small.") or the step that brought it where
# the image shows it ("A red circle on the left. It moves right."), and the `[IMG]` states learn from
# text whose scene is spread over sentences, as a story's is (`CaptionSet.img_texts`). Captioning (01) and the
# generator's targets (03) keep the caption.

# %%
if profile.uses_world:
    from gill_lite.train.data import training_set

    corpus = training_set(profile)
    for caption, text in [(c, t) for c, t in zip(corpus.captions, corpus.img_texts) if c != t][:4]:
        print(f"{caption!r:60} -> {text!r}")

# %%
model, trained = notebook_stage(profile, "img_tokens", parts)

# %%
fig = loss_curve(stage_log(profile, trained), title=f"{trained} loss")
save_figure(fig, profile, "02_loss", stage="img_tokens")
fig

# %% [markdown]
# ## Does the LM emit `[IMG0]` after a caption?
# The share of held-out corpus captions (test split) after which `[IMG0]` is the greedy next token.

# %%
from gill_lite.evaluate.stages import img_emission_share, next_token_table

test = make_split("test", w.n_test, w.seed, w.heldout_fraction, w.image_size)
share = img_emission_share(model, [e.caption for e in test])
novel = make_split("heldout", w.n_heldout, w.seed, w.heldout_fraction, w.image_size)
share_novel = img_emission_share(model, [e.caption for e in novel])
print(f"[IMG0] is the greedy next token after {share:.1%} of {len(test)} test captions "
      f"and {share_novel:.1%} of {len(novel)} captions of held-out combinations")
record_results(profile, "img_tokens", {"img0_emission_share": share, "img0_emission_share_heldout": share_novel})

# %% [markdown]
# The five most likely next tokens after a few texts: captions end in `[IMG0]`; other texts mostly do not.

# %%
texts = [test[0].caption, test[1].caption, "A small red", "Q: what colour is the circle?\nA:"]
for text, top in zip(texts, next_token_table(model, texts)):
    print(repr(text), "->", top)
