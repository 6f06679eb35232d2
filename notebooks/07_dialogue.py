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
# # 07 · Talking to GILL: text and images in, text and images out
#
# GILL takes an **interleaved** list of texts and images and answers with text, and, when it emits `[IMG0]`,
# an image. The paper writes a conversation as `Q: ...` / `A: ...` lines; the model answers after `A:`.
#
# What happens for one answer (`gill_lite.chat.GillChat.respond`, through `GillPipeline.respond`):
# 1. the conversation becomes the model's input: texts tokenised (`BOS text`), images through the visual prefix;
# 2. **greedy decoding with a KV cache**; `[IMG1..7]` can never be sampled, and once `[IMG0]` comes out all eight
#    `[IMG]` tokens are appended;
# 3. the **decision classifier** (notebook 05) reads the `[IMG0]` state and the top retrieval score over the index:
#    *retrieve* or *generate*;
# 4. **only the chosen path runs**: the retrieval head scores the `[IMG0]` state against an index of corpus images,
#    or the GillMapper turns the 8 `[IMG]` states into the generator's `prompt_embeds`. (The published code always
#    ran Stable Diffusion, even when it then showed the retrieved image.)
#
# The language model here is a small stand-in that read ShapeStories captions, stories and Q/A dialogues; do not
# expect wit. Whether it emits `[IMG0]` on its own is itself a result: `FORCE_IMAGE` appends the `[IMG]` tokens
# after its answer when it does not (as the VIST evaluation forces them), and each reply says which happened.

# %% tags=["parameters"]
import os
PROFILE = os.environ.get("GILL_PROFILE", "tiny")  # ci | tiny | paper; papermill -p PROFILE wins
FORCE_IMAGE = True  # append [IMG0..7] after an answer that did not emit them
SEED = 0

# %%
# %matplotlib inline
from gill_lite.chat import GillChat, world_index
from gill_lite.config import notebook_profile
from gill_lite.figures import image_grid
from gill_lite.inference import GillPipeline
from gill_lite.widgets import ChatWidget
from gill_lite.world.corpus import make_split

profile = notebook_profile(PROFILE)
print(profile.name)

# %% [markdown]
# ## GILL, its decision head, and the images it can retrieve
# One `GillPipeline` holds GILL's trained parts (with notebook 05's decision head), its frozen parts and the
# retrieval index, which holds the corpus's training images (the paper retrieves from CC3M, its training set).

# %%
pipe = GillPipeline.for_profile(profile)
pipe.index, index_captions = world_index(pipe, profile, "train")
chat = GillChat(pipe, seed=SEED, force_image=FORCE_IMAGE)
print(pipe, "|", len(pipe.index), "images in the retrieval index")


# %% [markdown]
# ## A scripted conversation
# First a request for a combination the corpus shows (retrieval can answer it exactly), then a held-out
# combination no training image shows (only generation can), then an image from the user with a question.

# %%
def show(reply, title=""):
    print(f"A: {reply.text!r}   ([IMG0] emitted by the model: {reply.emitted_img})")
    for image, source, probs in reply.images:
        print(f"   image: {source}; decision p(generate)={probs['generate']:.2f}, p(retrieve)={probs['retrieve']:.2f}")
    return image_grid([i.image for i in reply.images], [f"{i.source}" for i in reply.images], size=2) if reply.images else None

from gill_lite.world.captions import noun_phrase
from gill_lite.world.corpus import heldout_shapes, train_shapes

seen = train_shapes(profile.world.seed, profile.world.heldout_fraction)[0]
novel = sorted(heldout_shapes(profile.world.seed, profile.world.heldout_fraction))[0]
question = f"show me {noun_phrase(seen)}"
print("Q:", question)
show(chat.ask(question))

# %%
question = f"and now {noun_phrase(novel)}"
print("Q:", question, "(a held-out combination)")
show(chat.ask(question))

# %%
user_image = make_split("test", 1, profile.world.seed, profile.world.heldout_fraction, profile.world.image_size)[0]
print("Q: [an image of:", user_image.caption, "] what is this?")
show(chat.ask(user_image.image(profile.world.image_size), "what is this?", force_image=False))

# %% [markdown]
# The whole conversation, as the model reads it (images shown as `<image>`):

# %%
from gill_lite.chat import transcript

print(transcript(chat.history))

# %% [markdown]
# ## The chat widget
# Type a question, pick an image from the world (or upload one, of any size), press *send* or Enter; answers
# appear inline with their image, its source and the decision's probabilities. The box "always answer with an
# image" starts at `FORCE_IMAGE`. The LM reads at most `max_positions` tokens: when the conversation grows past
# them, the oldest turns are dropped (the widget says so). The picker's images are named by number, not by their
# captions: say what you see, the model has to. The cell below also drives it from code, so it runs headless
# (under CI) with a scripted conversation.

# %%
examples = make_split("test", 12, profile.world.seed, profile.world.heldout_fraction, profile.world.image_size)
picker = {f"image {i + 1}": e.image(profile.world.image_size) for i, e in enumerate(examples)}
widget = ChatWidget(pipe, picker, seed=SEED, force_image=FORCE_IMAGE)
widget.send("show me a large blue square in the middle")
widget.send("what is this?", image=examples[0].image(profile.world.image_size), force_image=False)
widget.widget
