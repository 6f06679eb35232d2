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
# # 00 · The world: ShapeStories
#
# GILL (Koh et al., 2023) is trained on **CC3M** (3.3M captioned web images), evaluated on **VIST** (5-image
# stories) and its generate-or-retrieve decision comes from judged **PartiPrompts**. None of these fit on a laptop,
# and none of them says exactly what is in an image. So `tiny` and `ci` run on **ShapeStories**, a world rendered
# from seeds where every image's contents are known:
#
# | real data | ShapeStories stand-in | format written |
# |---|---|---|
# | CC3M captioned images | a captioned corpus of shapes (kind, colour, size, position) with varied caption templates; some attribute combinations are **held out** of training | CC3M-style TSV + image folder |
# | VIST stories | 5-frame stories of one character that moves, grows, shrinks and changes colour; some changes are only visible in the images | VIST SIS JSON |
# | PartiPrompts decisions | prompts for combinations seen in training (*retrieval should win*) and novel compositions (*generation should win*) | decision TSV |
# | dialogue (VisDial) | Q/A text about a scene | JSON lines |
#
# Because the renderer knows each image's attributes, a rule-based probe scores generated images exactly.
# The same loaders (`gill_lite.data`) read these exports and the real files of the `paper` profile.

# %% tags=["parameters"]
import os
PROFILE = os.environ.get("GILL_PROFILE", "tiny")  # ci | tiny | paper; papermill -p PROFILE wins
REBUILD = False  # rewrite the exports even if they exist, and retrain the stand-in frozen parts (tens of minutes at tiny)

# %%
# %matplotlib inline
from collections import Counter

from gill_lite.config import notebook_profile
from gill_lite.data import load_cc3m
from gill_lite.plots import attribute_histograms, image_grid, story_strip
from gill_lite.world import (heldout_shapes, information_ceiling, make_corpus, make_decision_prompts, make_dialogues,
                             make_stories, probe_image, render_scene)
from gill_lite.world.cli import write_world

profile = notebook_profile(PROFILE)
world = profile.world
print(profile.name, world)

# %% [markdown]
# ## Writing the world in the real formats
# `write_world` (also `gill-lite world --profile P`) renders everything and writes the CC3M TSV, the VIST JSON,
# the decision prompts and the dialogues. Reading the TSV back goes through the same loader the real CC3M uses.

# %%
world_dir = profile.run_dir / "world"
if REBUILD or not (world_dir / "world.json").exists():
    write_world(profile, world_dir)
rows, skipped = load_cc3m(world_dir / "cc3m" / "val.tsv")
print(len(rows), "validation rows read back,", len(skipped), "skipped")

# %% [markdown]
# ## The captioned corpus (the CC3M stand-in)
# Each title is the image's caption; captions come from several templates.

# %%
corpus = make_corpus(world)
sample = corpus["train"][:16]
image_grid([e.image(world.image_size) for e in sample], [e.caption for e in sample], ncols=8)

# %% [markdown]
# ### Corpus statistics and the held-out combinations
# Every single attribute value appears in training; only some *combinations* are held out. They form the
# `heldout` split (novel compositions) and the "novel" decision prompts.

# %%
held = sorted(heldout_shapes(world.seed, world.heldout_fraction))
print({split: len(examples) for split, examples in corpus.items()})
print(len(held), "held-out combinations of", 3 * 4 * 2 * 9, "; e.g.", [f"{s.size} {s.colour} {s.kind} {s.position}" for s in held[:4]])
print("held-out combinations seen in train:", len({e.shape for e in corpus["train"]} & set(held)))
attribute_histograms({split: [e.shape for e in corpus[split]] for split in ("train", "heldout")})

# %% [markdown]
# ## Stories (the VIST stand-in) and their information ceilings
# The last caption alone is ambiguous; the five captions say more; some changes ("It changes colour.") are only
# visible in the images. `story.known` lists what each input determines about the final frame, computed by
# reasoning over the events, so every VIST-style score later has a ceiling beside it.

# %%
stories = make_stories(world.n_stories, world.seed, "eval", world.image_size)
story = next(s for s in stories if set(s.known["captions"]) != set(s.known["captions_images"]))
print(story.events)
print(story.known)
story_strip(story.images(world.image_size), story.captions, title=story.id)

# %%
ceiling = information_ceiling(stories)
print(f"{'setting':18s}" + "".join(f"{k:>10s}" for k in ceiling["captions"]))
for setting, shares in ceiling.items():
    print(f"{setting:18s}" + "".join(f"{v:10.0%}" for v in shares.values()))

# %% [markdown]
# ## Decision prompts (the PartiPrompts stand-in)

# %%
prompts = make_decision_prompts(world.n_decision_prompts, world.seed, world.heldout_fraction)
print(Counter(p.category for p in prompts))
for p in prompts[:6]:
    print(f"{p.category:7s} {p.text}")

# %% [markdown]
# ## Dialogue (Q/A text the language-model stand-in reads)

# %%
dialogue = make_dialogues(3, world.seed, world.image_size)[2]
print(dialogue.text)
image = render_scene(dialogue.scene, world.image_size)
print("the attribute probe reads the main object as:", probe_image(image))
image_grid([image], [dialogue.caption], ncols=1, size=2.5)

# %% [markdown]
# ## The frozen parts

# %% [markdown]
# GILL freezes three pretrained models: **OPT-6.7B** (language), **CLIP ViT-L/14** (image encoder; GILL reads
# its pooled 1024-d vector *before* the projection) and **Stable Diffusion v1.5** (generator; GILL's mapper
# produces its 77 x 768 text-encoder states). A fourth, the evaluation CLIP, scores generated images.
#
# At `paper` they come from the hub. At `tiny` they are **stand-ins pretrained once on this world** and
# committed under `models/tiny/`, loaded exactly like hub weights (a local folder instead of a hub id):
# an OPT (transformers), two open_clip CLIPs (one for GILL's image input, one trained separately as the judge)
# and a diffusers `StableDiffusionPipeline` whose UNet works in pixel space. `ci` trains small ones in
# seconds. `REBUILD = True` retrains them (tens of minutes of CPU at `tiny`). Each folder has a model card.

# %%
from gill_lite.backbones import ensure_standins, load_frozen_parts, standin_dir
from gill_lite.backbones.build import PARTS
from gill_lite.backbones.cards import card_summary

ensure_standins(profile, rebuild=REBUILD)
parts = load_frozen_parts(profile, build_missing=False)
print(parts.config_names)
print("LM hidden", parts.lm.hidden_size, "| image features", parts.image_encoder.hidden_size,
      "| generation target", (parts.generator.max_length, parts.generator.text_width))

# %%
if profile.uses_world:
    for part in PARTS:
        print(card_summary(standin_dir(profile, part)), end="\n\n")

# %% [markdown]
# ### The generator: captions it never saw, next to the true renders
# Held-out captions of the test split (seen combinations) and of the held-out combinations. The probe reads
# each generated image back; the model card has its accuracy over a few hundred captions.

# %%
from gill_lite.backbones.evaluate import generator_showcase
from gill_lite.backbones.generator import generator_accuracy, generator_eval_sets
from gill_lite.figures import save_figure
from gill_lite.plots import generator_samples

truth, generated, captions = generator_showcase(parts.generator, profile, n=8, split="test")
fig = generator_samples(truth, generated, captions)
save_figure(fig, profile, "generator_samples", stage="standins")
fig

# %%
truth, generated, captions = generator_showcase(parts.generator, profile, n=8, split="heldout")
generator_samples(truth, generated, captions)

# %%
for split, examples in generator_eval_sets(world, 32).items():
    print(split, generator_accuracy(parts.generator, examples))

# %% [markdown]
# ### The language model: greedy continuations

# %%
from gill_lite.backbones.language_model import SAMPLE_PROMPTS, greedy_samples

for sample in greedy_samples(parts.lm.model, parts.lm.tokenizer, SAMPLE_PROMPTS):
    print(repr(sample))

# %% [markdown]
# ### The CLIPs: text-to-image recall@1 in pools of 100 held-out images
# `attribute_recall_at_1` also counts a top image of the right combination (two renders in a pool can differ
# only by a pixel of jitter).

# %%
from gill_lite.backbones.image_encoder import clip_eval_sets, clip_recall

for split, (images, caps, shapes) in clip_eval_sets(world, 200).items():
    for name in ("image_encoder", "eval_clip"):
        print(f"{split:8s} {name:14s}", clip_recall(getattr(parts, name), images, caps, shapes))
