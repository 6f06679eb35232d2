"""Write notebooks 01_image_input, 02_img_tokens, 03_generation, 04_retrieval (no outputs).

    .venv/bin/python notebooks/make_01_04_gill.py
"""
from pathlib import Path

import nbformat

from nbtools import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = Path(__file__).resolve().parent

SETUP = """%matplotlib inline
from gill_lite.backbones import load_frozen_parts
from gill_lite.config import notebook_profile
from gill_lite.figures import save_figure
from gill_lite.pipeline import record_results
from gill_lite.plots import image_grid, image_rows, loss_curve
from gill_lite.train import stage_log
from gill_lite.train.loop import notebook_stage
from gill_lite.world.corpus import make_split

profile = notebook_profile(PROFILE)
parts = load_frozen_parts(profile)
w = profile.world
print(profile.name, "| LM", parts.lm.config_name, "| image encoder", parts.image_encoder.config_name,
      "| generator", parts.generator.config_name)"""


def params(extra: str = "") -> nbformat.NotebookNode:
    src = 'import os\nPROFILE = os.environ.get("GILL_PROFILE", "tiny")  # ci | tiny | paper; papermill -p PROFILE wins' + (f"\n{extra}" if extra else "")
    return new_code_cell(src, metadata={"tags": ["parameters"]})


def train_cells(stage: str) -> list:
    return [
        # paper: the one joint run (notebook_stage); tiny/ci: this stage. A finished checkpoint is loaded.
        new_code_cell(f'model, trained = notebook_stage(profile, "{stage}", parts)'),
        new_code_cell(f'fig = loss_curve(stage_log(profile, trained), title=f"{{trained}} loss")\n'
                      f'save_figure(fig, profile, "{NUMBER[stage]}_loss", stage="{stage}")\nfig'),
    ]


NUMBER = {"captioning": "01", "img_tokens": "02", "generation": "03", "retrieval": "04"}

NOTEBOOKS = {
    "01_image_input": [
        new_markdown_cell("""# 01 · Image input: the visual prefix and the captioning loss

GILL's first ability is to *read* images. A frozen image encoder (CLIP ViT-L/14 in the paper, a tiny CLIP here)
gives one pooled vector per image (1024-d in the paper: the vector *before* CLIP's own projection). A single
linear layer, the **visual prefix**, maps it to 4 input embeddings of the frozen LM:

    Linear(image hidden -> 4 x LM hidden), reshaped to 4 tokens

and the LM is trained, through these 4 vectors only, to continue `[4 visual tokens] BOS` with the caption
(cross-entropy on the caption tokens). Everything else is frozen: the LM learns nothing, the prefix learns to
speak its input language. As in FROMAGe/GILL, half of each batch is concatenated in pairs
(`[img a] BOS caption a [img b] BOS caption b`), so the model sees more than one caption at a time.

This notebook trains the prefix (or loads it), plots the loss, and captions images of **held-out attribute
combinations** (never seen in any training caption). Because every image comes from the ShapeStories renderer,
the generated captions can be checked attribute by attribute."""),
        params("N_SHOW = 12  # captioned images shown"),
        new_code_cell(SETUP),
        *train_cells("captioning"),
        new_markdown_cell("## Captions of held-out images\nThe title is the greedy caption; the image's true caption is below it in brackets."),
        new_code_cell("""from gill_lite.train.metrics import caption_accuracy

heldout = make_split("heldout", w.n_heldout, w.seed, w.heldout_fraction, w.image_size)
accuracy, captions = caption_accuracy(model, heldout, w.image_size)
show = heldout[:N_SHOW]
fig = image_grid([e.image(w.image_size) for e in show],
                 [f"{c} [{e.caption}]" for c, e in zip(captions, show)], ncols=6, size=2.0)
save_figure(fig, profile, "01_captions", stage="captioning")
fig"""),
        new_markdown_cell("""## How much can a linear prefix read from the image encoder?
The prefix is one linear layer, so a linear probe on the frozen pooled vectors (trained on the training split's
features, tested on the held-out images) is roughly the ceiling of the captions above, attribute by attribute."""),
        new_code_cell("""from gill_lite.train.metrics import image_encoder_probe

probe = image_encoder_probe(profile, parts.image_encoder, heldout)
print("attribute accuracy of generated captions on", len(heldout), "held-out images:")
print("  captions    ", {k: round(v, 3) for k, v in accuracy.items()})
print("  linear probe", {k: round(v, 3) for k, v in probe.items()})
record_results(profile, "captioning", {"caption_accuracy_heldout": accuracy, "linear_probe_heldout": probe,
                                       "n_images": len(heldout)})"""),
    ],
    "02_img_tokens": [
        new_markdown_cell("""# 02 · The `[IMG]` tokens

To *produce* images, GILL adds 8 new tokens `[IMG0]..[IMG7]` to the LM's vocabulary. Only their 8 rows of the
(tied) embedding matrix learn; every other row stays frozen (here the rows live in a small separate parameter
substituted into the embedding lookup and the logits, so weight decay cannot touch the frozen rows, a quirk of
the published code). After each step the 8 rows are rescaled to the mean norm of the frozen rows.

The loss: cross-entropy on `BOS caption [IMG0..7]` with labels on the caption and on `[IMG0]` only. The LM
learns *when* an image belongs (after a caption-like text) by predicting `[IMG0]`; `[IMG1..7]` are never
predicted: at inference they are appended as soon as `[IMG0]` is produced. Their hidden states carry the
meaning the generation (03) and retrieval (04) stages read.

This notebook trains the rows (starting from the 01 checkpoint) and shows the LM choosing to emit `[IMG0]`."""),
        params(),
        new_code_cell(SETUP),
        *train_cells("img_tokens"),
        new_markdown_cell("## Does the LM emit `[IMG0]` after a caption?\nThe share of held-out corpus captions (test split) after which `[IMG0]` is the greedy next token."),
        new_code_cell("""from gill_lite.train.metrics import img_emission_share, next_token_table

test = make_split("test", w.n_test, w.seed, w.heldout_fraction, w.image_size)
share = img_emission_share(model, [e.caption for e in test])
novel = make_split("heldout", w.n_heldout, w.seed, w.heldout_fraction, w.image_size)
share_novel = img_emission_share(model, [e.caption for e in novel])
print(f"[IMG0] is the greedy next token after {share:.1%} of {len(test)} test captions "
      f"and {share_novel:.1%} of {len(novel)} captions of held-out combinations")
record_results(profile, "img_tokens", {"img0_emission_share": share, "img0_emission_share_heldout": share_novel})"""),
        new_markdown_cell("The five most likely next tokens after a few texts: captions end in `[IMG0]`; other texts mostly do not."),
        new_code_cell("""texts = [test[0].caption, test[1].caption, "A small red", "Q: what colour is the circle?\\nA:"]
for text, top in zip(texts, next_token_table(model, texts)):
    print(repr(text), "->", top)"""),
    ],
    "03_generation": [
        new_markdown_cell("""# 03 · Generation: the GILLMapper

The 8 `[IMG]` hidden states live in the LM's space; the image generator (Stable Diffusion v1.5 in the paper,
a tiny pixel-space diffusion model here) is conditioned on its own text encoder's output, a `max_length x width`
sequence (77 x 768 for SD). The **GILLMapper** translates between them:

    (8 [IMG] states + their input embeddings) -> Linear(LM hidden -> d) -> Transformer encoder-decoder
    reading max_length learned queries -> Linear(d -> text width)

trained to minimise the per-token Euclidean distance to the generator's text-encoder output of the caption.
No image is ever generated during training: the generator's own text encoder is the teacher, and its outputs
are computed once and cached. At inference the mapper's output goes to the generator as `prompt_embeds`.

This notebook trains the mapper (from the 02 checkpoint) and compares images generated *through GILL* with the
generator given the true caption (the ceiling GILL can reach), scored by the exact attribute probe."""),
        params("N_EVAL = 64  # captions generated for the probe (x2 images: GILL and the baseline)\nN_SHOW = 8"),
        new_code_cell(SETUP),
        *train_cells("generation"),
        new_markdown_cell("## Generated through GILL next to the generator's own\nRows: the true image, GILL (caption -> LM -> `[IMG]` states -> mapper -> generator), the generator given the caption."),
        new_code_cell("""from gill_lite.train.metrics import generation_accuracy

test = make_split("test", min(N_EVAL, w.n_test), w.seed, w.heldout_fraction, w.image_size)
result = generation_accuracy(model, parts.generator, test, seed=0)
fig = image_rows({"truth": [e.image(w.image_size) for e in test[:N_SHOW]],
                  "GILL": result["gill_images"][:N_SHOW], "generator": result["ceiling_images"][:N_SHOW]},
                 titles=[e.caption for e in test[:N_SHOW]])
save_figure(fig, profile, "03_generated_vs_sd", stage="generation")
fig"""),
        new_code_cell("""for name in ("gill", "ceiling"):
    print(f"{name:8s}", {k: round(v, 3) for k, v in result[name].items()})
record_results(profile, "generation", {"probe_accuracy_gill": result["gill"],
                                       "probe_accuracy_generator_from_caption": result["ceiling"],
                                       "n_images": len(test)})"""),
    ],
    "04_retrieval": [
        new_markdown_cell("""# 04 · Retrieval: contrastive heads and the index

GILL can also *retrieve* an existing image. Two linear heads map the `[IMG0]` hidden state
(`Linear(LM hidden -> 256)`) and the image encoder's pooled vector (`Linear(image hidden -> 256)`) into one
L2-normalised space, trained with a symmetric InfoNCE loss over the whole batch (all-gathered across GPUs)
with a learnable temperature (initial logit scale ln(1/0.07), as CLIP).

The image side is applied once to a collection: the **retrieval index** (safetensors: embeddings + ids). A
query is any context followed by `[IMG0..7]`; its `[IMG0]` embedding is scored against the index.

This notebook trains the heads (from the 03 checkpoint, so the result holds the whole model), indexes a pool
of fresh test images, and measures text-to-image recall@k. A caption names only the attributes, and a pool holds
several renders of the same attributes (differing in a few pixels of jitter), so even a perfect retriever ties:
the *oracle ceiling* printed beside each recall is the expected recall of one that knows the attributes exactly."""),
        params("N_QUERIES = 5  # queries shown\nK = 5"),
        new_code_cell(SETUP),
        *train_cells("retrieval"),
        new_markdown_cell("## Recall@k over a pool of held-out images\nQueries are the captions of the pool's images; the pool is the test split (fresh renders, never trained on), and the held-out combinations separately."),
        new_code_cell("""from gill_lite.train.metrics import retrieval_ceiling, retrieval_recall

pool = make_split("test", min(profile.eval.retrieval_pool or w.n_test, w.n_test), w.seed, w.heldout_fraction, w.image_size)
novel = make_split("heldout", w.n_heldout, w.seed, w.heldout_fraction, w.image_size)
recall = retrieval_recall(model, pool, profile.eval.recall_at, w.image_size)
recall_novel = retrieval_recall(model, novel, profile.eval.recall_at, w.image_size)
ceiling, ceiling_novel = retrieval_ceiling(pool, profile.eval.recall_at), retrieval_ceiling(novel, profile.eval.recall_at)
print(f"pool of {len(pool)} test images:", recall, "| oracle ceiling:", ceiling)
print(f"pool of {len(novel)} held-out-combination images:", recall_novel, "| oracle ceiling:", ceiling_novel)
record_results(profile, "retrieval", {"recall_test_pool": recall, "test_pool_size": len(pool), "ceiling_test_pool": ceiling,
                                      "recall_heldout_pool": recall_novel, "heldout_pool_size": len(novel),
                                      "ceiling_heldout_pool": ceiling_novel})"""),
        new_markdown_cell("## Top-k retrievals\nEach row: a query caption and its top-k images from the index (saved as safetensors next to the checkpoint)."),
        new_code_cell("""import numpy as np
from gill_lite.inference import RetrievalIndex, img_states_batch, retrieve

images = np.stack([e.image(w.image_size) for e in pool])
index = RetrievalIndex.build(model, images, [e.id for e in pool])
index.save(profile.run_dir / "gill" / "retrieval" / "index_test.safetensors")
queries = pool[:N_QUERIES]
hits = retrieve(model, index, img_states_batch(model, [q.caption for q in queries]), k=K)
by_id = {e.id: e for e in pool}
fig = image_rows({f"{j + 1}. {q.caption}": [by_id[i].image(w.image_size) for i, _ in row]
                  for j, (q, row) in enumerate(zip(queries, hits))},
                 titles=[f"top {j + 1}" for j in range(K)])
save_figure(fig, profile, "04_top_k", stage="retrieval")
fig"""),
        new_markdown_cell("""## The joint run: every part learns from every loss
Until now each stage trained one part with one loss, and the `[IMG]` rows were shaped by stage 02 alone. In the
paper all four losses are summed at every step, so the rows also learn from the generation and retrieval losses,
through the frozen LM: they learn to *gather* what the mapper and the heads need from the context before them,
not only to be predicted after a caption. With pairs of captions in every loss (`BOS caption_a [IMG0..7]
caption_b [IMG0..7]`), that is where GILL learns that the `[IMG]` states after earlier context must describe the
latest caption, the skill a story needs (notebook 06). `train.joint_from` starts this run from the staged
chain (the `paper` profile trains it from scratch, as published); it is the GILL that notebooks 05-07 use."""),
        new_code_cell("""from gill_lite.train import load_gill

gill = load_gill(profile, parts)  # the profile's final stage: the joint run here (loaded if finished)
final = profile.train.final_stage
fig = loss_curve(stage_log(profile, final), title=f"{final} losses")
save_figure(fig, profile, "04_joint_loss", stage="retrieval")
fig"""),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        write_notebook(HERE / f"{name}.ipynb", cells)


if __name__ == "__main__":
    main()
