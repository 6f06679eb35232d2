"""Write the stand-in half of notebooks/00_world.ipynb: the cells after the "## The frozen parts" marker.

The data half is written by make_00_world.py, which keeps whatever follows the marker; this script replaces
exactly that part, so both can be re-run in any order.
"""
from pathlib import Path


from nbtools import split_at_marker, write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

PATH = Path(__file__).with_name("00_world.ipynb")
MARKER = "## The frozen parts"

CELLS = [
    new_markdown_cell("""GILL freezes three pretrained models: **OPT-6.7B** (language), **CLIP ViT-L/14** (image encoder; GILL reads
its pooled 1024-d vector *before* the projection) and **Stable Diffusion v1.5** (generator; GILL's mapper
produces its 77 x 768 text-encoder states). A fourth, the evaluation CLIP, scores generated images.

At `paper` they come from the hub. At `tiny` they are **stand-ins pretrained once on this world** and
committed under `models/tiny/`, loaded exactly like hub weights (a local folder instead of a hub id):
an OPT (transformers), two open_clip CLIPs (one for GILL's image input, one trained separately as the judge)
and a diffusers `StableDiffusionPipeline` whose UNet works in pixel space. `ci` trains small ones in
seconds. `REBUILD = True` retrains them (tens of minutes of CPU at `tiny`). Each folder has a model card."""),
    new_code_cell("""from gill_lite.backbones import ensure_standins, load_frozen_parts, standin_dir
from gill_lite.backbones.build import PARTS
from gill_lite.backbones.cards import card_summary

ensure_standins(profile, rebuild=REBUILD)
parts = load_frozen_parts(profile, build_missing=False)
print(parts.config_names)
print("LM hidden", parts.lm.hidden_size, "| image features", parts.image_encoder.hidden_size,
      "| generation target", (parts.generator.max_length, parts.generator.text_width))"""),
    new_code_cell("""if profile.uses_world:
    for part in PARTS:
        print(card_summary(standin_dir(profile, part)), end="\\n\\n")"""),
    new_markdown_cell("""### The generator: captions it never saw, next to the true renders
Held-out captions of the test split (seen combinations) and of the held-out combinations. The probe reads
each generated image back; the model card has its accuracy over a few hundred captions."""),
    new_code_cell("""from gill_lite.backbones.evaluate import generator_showcase
from gill_lite.backbones.generator import generator_accuracy, generator_eval_sets
from gill_lite.figures import save_figure
from gill_lite.plots import generator_samples

truth, generated, captions = generator_showcase(parts.generator, profile, n=8, split="test")
fig = generator_samples(truth, generated, captions)
save_figure(fig, profile, "generator_samples", stage="standins")
fig"""),
    new_code_cell("""truth, generated, captions = generator_showcase(parts.generator, profile, n=8, split="heldout")
generator_samples(truth, generated, captions)"""),
    new_code_cell("""for split, examples in generator_eval_sets(world, 32).items():
    print(split, generator_accuracy(parts.generator, examples))"""),
    new_markdown_cell("### The language model: greedy continuations"),
    new_code_cell("""from gill_lite.backbones.language_model import SAMPLE_PROMPTS, greedy_samples

for sample in greedy_samples(parts.lm.model, parts.lm.tokenizer, SAMPLE_PROMPTS):
    print(repr(sample))"""),
    new_markdown_cell("""### The CLIPs: text-to-image recall@1 in pools of 100 held-out images
`attribute_recall_at_1` also counts a top image of the right combination (two renders in a pool can differ
only by a pixel of jitter)."""),
    new_code_cell("""from gill_lite.backbones.image_encoder import clip_eval_sets, clip_recall

for split, (images, caps, shapes) in clip_eval_sets(world, 200).items():
    for name in ("image_encoder", "eval_clip"):
        print(f"{split:8s} {name:14s}", clip_recall(getattr(parts, name), images, caps, shapes))"""),
]


def main():
    split = split_at_marker(PATH, MARKER)
    if split is None:
        raise SystemExit(f"{PATH} has no {MARKER!r} cell: run make_00_world.py first")
    write_notebook(PATH, split[0] + CELLS)


if __name__ == "__main__":
    main()
