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
# # 05 · Generate or retrieve: the decision classifier
#
# When GILL emits `[IMG0]`, it can **retrieve** an image from a fixed collection or **generate** a new one. A
# linear classifier picks which one to show: as in the published model, `Dropout(0.5)` + `Linear(d + 1 -> 2)` on
# the `[IMG0]` hidden state next to the top retrieval score (the retrieval head's `logit_scale` x cosine of the
# best image in the collection: how good the best image there is).
# The paper built its training set like this:
#
# 1. for each of the 1,632 **PartiPrompts**, GILL produced one generated and one retrieved image;
# 2. **5 annotators** voted *ret*, *gen* or *same*;
# 3. a **confidence rule** kept a prompt when at least 4 of 5 agree, or 3 agree and the opposite label has at most
#    1 vote: about **911** examples (592 gen, 319 ret); the rest were dropped;
# 4. the first 600 train the classifier (AdamW, lr 1e-3, 2,000 full-batch steps), the rest validate; macro F1,
#    next to the annotators' own agreement F1 (**0.851**).
#
# Here the prompts are ShapeStories prompts: some ask for attribute combinations GILL saw in training
# (*retrieval should win*: the exact image exists), some for held-out combinations (*generation should win*: no
# training image shows them). Five simulated judges compare each pair with the prompt's ground truth (the
# attribute probe and the evaluation CLIP), each with its own noise. You can judge too, in the widget below:
# your votes replace judge 1's on the prompts you judge. At `paper` the votes come from GILL's published TSV.

# %% tags=["parameters"]
import os
PROFILE = os.environ.get("GILL_PROFILE", "tiny")  # ci | tiny | paper; papermill -p PROFILE wins
N_WIDGET = 20  # prompts offered in the judging widget

# %%
# %matplotlib inline
from gill_lite.config import notebook_profile
from gill_lite.decision import stage
from gill_lite.decision.classifier import fit_decision, fit_img0_only, head_of
from gill_lite.decision.data import decision_prompts
from gill_lite.figures import confusion_plot, decision_training_plot, image_grid, label_counts_plot, save_figure
from gill_lite.inference import GillPipeline
from gill_lite.paper_numbers import ANNOTATOR_F1, DECISION_COUNTS
from gill_lite.pipeline import record_results
from gill_lite.widgets import JudgingPanel

profile = notebook_profile(PROFILE)
print(profile.name, profile.decision)

# %% [markdown]
# ## The trained GILL
# `GillPipeline.for_profile` loads the frozen parts and finds the finished checkpoint of notebooks 01-04 (or the
# joint run), training only what is missing. Its decision head is the one this notebook trains.

# %%
pipe = GillPipeline.for_profile(profile, with_decision=False)
pipe

# %% [markdown]
# ## 1 · Collect: one generated and one retrieved image per prompt
# For each prompt, GILL reads `BOS prompt [IMG0..7]`; the 8 `[IMG]` states go through the mapper into the generator,
# the `[IMG0]` state is scored against the training images (top 1 is kept), and the `[IMG0]` state and that top
# score are stored: they are what the classifier will read. Everything lands in `runs/<profile>/decision/collection/`, written
# atomically; an interrupted run resumes where it stopped, and a finished one is simply loaded.

# %%
prompts, published_votes = decision_prompts(profile)
collection = stage.collect_for_profile(profile, pipe, prompts)
print(len(collection), "prompts collected in", collection.root)

# %%
show = range(8)
pictures = [collection.image(i, kind) for i in show for kind in ("gen", "ret")]
titles = [f"{kind}: {collection.texts[i]} [{collection.categories[i]}]" for i in show for kind in ("gen", "ret")]
image_grid(pictures, titles, ncols=8, title_width=18)

# %% [markdown]
# ## 2 · Judge
# ### You, in the widget
# The two images are shown in a seeded random order, unlabelled. Each click is saved at once (appended and flushed
# to `human_votes.jsonl`), so a vote is never lost; re-running the cell resumes at the first prompt you have not
# judged. When nobody clicks (as under CI), the simulated votes are used unchanged.

# %%
panel = JudgingPanel(stage.judging_items(collection, N_WIDGET), stage.human_votes_path(profile), seed=profile.decision.seed)
panel.widget

# %% [markdown]
# ### Five simulated judges, and the confidence rule
# Each judge scores both images against the prompt: the share of attributes the probe reads correctly (0.25 per
# attribute), plus a small weight on the evaluation-CLIP similarity; it adds its own perception noise, calls the
# pair *same* below its own threshold, leans a little towards one kind of image, and now and then votes at random.
# Then the paper's rule keeps the confident prompts.

# %%
judged = stage.judge_collection(profile, collection, pipe.parts.eval_clip, votes=published_votes,
                                human_path=stage.human_votes_path(profile))
print("labels after the confidence rule:", judged.counts, f"(paper: {DECISION_COUNTS})")
print(f"your votes used: {judged.n_human}")
print(f"Fleiss' kappa {judged.report['fleiss_kappa']:.3f}, pairwise agreement {judged.report['pairwise_agreement']:.3f}")
print("each judge's F1 against the other four:", [round(f, 3) for f in judged.report["loo_f1_per_judge"]])
print("vote shares:", {k: round(v, 3) for k, v in judged.report["vote_shares"].items()})
by_category = stage.label_by_category(judged.labels, collection.categories)
by_category

# %%
fig = label_counts_plot(judged.counts, DECISION_COUNTS)
save_figure(fig, profile, "05_label_counts", stage="decision")
fig

# %% [markdown]
# ## 3 · Train the decision head
# The confident prompts' `[IMG0]` states and top retrieval scores, in prompt order: the first `n_train` train, the
# rest validate. The head
# is the one inside `GillModel` (`model.decision`); it is saved to `runs/<profile>/gill/decision/` and found
# there next time (for the same data and settings).

# %%
features, labels, keep = stage.confident_set(collection, judged.labels)
result = fit_decision(profile, pipe.model, features, labels)
ceiling = stage.validation_ceiling(judged, keep, result.n_train)
print(f"{result.n_train} train / {result.n_val} validation examples")
print(f"validation macro F1 {result.val['macro_f1']:.3f} (accuracy {result.val['accuracy']:.3f}); "
      f"judges' ceiling on the same prompts {ceiling:.3f}; paper: annotators 0.851, released classifier ~0.54")
img0_only = fit_img0_only(profile, collection.img0_states()[keep], labels)
print(f"the same head on the [IMG0] state alone (the published notebook's fallback): macro F1 {img0_only['macro_f1']:.3f}")

# %%
fig = confusion_plot(result.val["confusion"], ["gen", "ret"], title="validation confusion (rows: judges)")
save_figure(fig, profile, "05_confusion", stage="decision")
fig

# %%
fig = decision_training_plot(result.history, ceiling) if result.history.get("step") else None
if fig is not None:
    save_figure(fig, profile, "05_decision_f1", stage="decision")
fig

# %% [markdown]
# ## 4 · What the decision does with the prompts
# On every collected prompt (confident or not): how often the head retrieves for prompts of seen combinations,
# and generates for novel ones. At inference only the chosen path runs
# (`GillPipeline.show_image`, which `respond` and the chat go through): the generator is not even called when
# retrieval wins.

# %%
shares = stage.choice_shares(head_of(pipe.model), collection.features(), collection.categories)
shares

# %%
on_corpus = pipe.with_index(stage.corpus_index(profile, pipe))  # retrieving from GILL's training images
shown = [on_corpus.show_image(on_corpus.img_states(collection.texts[i]), seed=0) for i in range(4)]
image_grid([s.image for s in shown],
           [f"{s.choice} (p={max(s.probabilities.values()):.2f}): {collection.texts[i]}" for i, s in enumerate(shown)],
           ncols=4, title_width=24)

# %%
_ = record_results(profile, "decision", {
    "n_prompts": len(collection),
    "labels": judged.counts,
    "labels_by_category": by_category,
    "fleiss_kappa": judged.report["fleiss_kappa"],
    "judge_loo_f1": judged.report["loo_f1"],
    "judges_ceiling_f1": {"value": ceiling, "paper": ANNOTATOR_F1},
    "classifier_macro_f1": {"value": result.val["macro_f1"], "paper_released": 0.54},
    "classifier_macro_f1_img0_only": img0_only["macro_f1"],
    "confusion": result.val["confusion"],
    "n_train": result.n_train, "n_val": result.n_val, "n_human_votes": judged.n_human,
    **shares,
})
print("recorded in", profile.run_dir / "results.json")

# %% [markdown]
# ## The real data (`paper`)
# With `PROFILE = "paper"`, `decision_prompts` reads GILL's published `PartiPromptsAllDecisions_Alignment.tsv`
# (columns `Prompt, Category, Challenge, Note, Decisions`, five votes each) from `profile.data.decision_tsv`, and
# those votes replace the simulated judges; everything after is the same code. See `docs/decision.md`.
