"""Write the data half of notebooks/00_world.ipynb (no outputs). Cells after "## The frozen parts" are kept,
so the stand-in half (added by its own script) survives a rebuild.

    .venv/bin/python notebooks/make_00_world.py
"""
from pathlib import Path


from nbtools import split_at_marker, write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

PATH = Path(__file__).resolve().parent / "00_world.ipynb"
MARKER = "## The frozen parts"

CELLS = [
    new_markdown_cell("""# 00 · The world: ShapeStories

GILL (Koh et al., 2023) is trained on **CC3M** (3.3M captioned web images), evaluated on **VIST** (5-image
stories) and its generate-or-retrieve decision comes from judged **PartiPrompts**. None of these fit on a laptop,
and none of them says exactly what is in an image. So `tiny` and `ci` run on **ShapeStories**, a world rendered
from seeds where every image's contents are known:

| real data | ShapeStories stand-in | format written |
|---|---|---|
| CC3M captioned images | a captioned corpus of shapes (kind, colour, size, position) with varied caption templates; some attribute combinations are **held out** of training | CC3M-style TSV + image folder |
| VIST stories | 5-frame stories of one character that moves, grows, shrinks and changes colour; some changes are only visible in the images | VIST SIS JSON |
| PartiPrompts decisions | prompts for combinations seen in training (*retrieval should win*) and novel compositions (*generation should win*) | decision TSV |
| dialogue (VisDial) | Q/A text about a scene | JSON lines |

Because the renderer knows each image's attributes, a rule-based probe scores generated images exactly.
The same loaders (`gill_lite.data`) read these exports and the real files of the `paper` profile."""),
    new_code_cell('import os\nPROFILE = os.environ.get("GILL_PROFILE", "tiny")  # ci | tiny | paper; papermill -p PROFILE wins\nREBUILD = False  # rewrite the exports even if they exist, and retrain the stand-in frozen parts (tens of minutes at tiny)', metadata={"tags": ["parameters"]}),
    new_code_cell("""%matplotlib inline
from collections import Counter

from gill_lite.config import notebook_profile
from gill_lite.data import load_cc3m, load_vist
from gill_lite.plots import attribute_histograms, image_grid, story_strip
from gill_lite.world import (heldout_shapes, information_ceiling, make_corpus, make_decision_prompts, make_dialogues,
                             make_stories, probe_image, render_scene)
from gill_lite.world.cli import write_world

profile = notebook_profile(PROFILE)
world = profile.world
print(profile.name, world)"""),
    new_markdown_cell("""## Writing the world in the real formats
`write_world` (also `gill-lite world --profile P`) renders everything and writes the CC3M TSV, the VIST JSON,
the decision prompts and the dialogues. Reading the TSV back goes through the same loader the real CC3M uses."""),
    new_code_cell("""world_dir = profile.run_dir / "world"
if REBUILD or not (world_dir / "world.json").exists():
    write_world(profile, world_dir)
rows, skipped = load_cc3m(world_dir / "cc3m" / "val.tsv")
print(len(rows), "validation rows read back,", len(skipped), "skipped")"""),
    new_markdown_cell("## The captioned corpus (the CC3M stand-in)\nEach title is the image's caption; captions come from several templates."),
    new_code_cell("""corpus = make_corpus(world)
sample = corpus["train"][:16]
image_grid([e.image(world.image_size) for e in sample], [e.caption for e in sample], ncols=8)"""),
    new_markdown_cell("""### Corpus statistics and the held-out combinations
Every single attribute value appears in training; only some *combinations* are held out. They form the
`heldout` split (novel compositions) and the "novel" decision prompts."""),
    new_code_cell("""held = sorted(heldout_shapes(world.seed, world.heldout_fraction))
print({split: len(examples) for split, examples in corpus.items()})
print(len(held), "held-out combinations of", 3 * 4 * 2 * 9, "; e.g.", [f"{s.size} {s.colour} {s.kind} {s.position}" for s in held[:4]])
print("held-out combinations seen in train:", len({e.shape for e in corpus["train"]} & set(held)))
attribute_histograms({split: [e.shape for e in corpus[split]] for split in ("train", "heldout")})"""),
    new_markdown_cell("""## Stories (the VIST stand-in) and their information ceilings
The last caption alone is ambiguous; the five captions say more; some changes ("It changes colour.") are only
visible in the images. `story.known` lists what each input determines about the final frame, computed by
reasoning over the events, so every VIST-style score later has a ceiling beside it."""),
    new_code_cell("""stories = make_stories(world.n_stories, world.seed, "eval", world.image_size)
story = next(s for s in stories if set(s.known["captions"]) != set(s.known["captions_images"]))
print(story.events)
print(story.known)
story_strip(story.images(world.image_size), story.captions, title=story.id)"""),
    new_code_cell("""ceiling = information_ceiling(stories)
print(f"{'setting':18s}" + "".join(f"{k:>10s}" for k in ceiling["captions"]))
for setting, shares in ceiling.items():
    print(f"{setting:18s}" + "".join(f"{v:10.0%}" for v in shares.values()))"""),
    new_markdown_cell("## Decision prompts (the PartiPrompts stand-in)"),
    new_code_cell("""prompts = make_decision_prompts(world.n_decision_prompts, world.seed, world.heldout_fraction)
print(Counter(p.category for p in prompts))
for p in prompts[:6]:
    print(f"{p.category:7s} {p.text}")"""),
    new_markdown_cell("## Dialogue (Q/A text the language-model stand-in reads)"),
    new_code_cell("""dialogue = make_dialogues(3, world.seed, world.image_size)[2]
print(dialogue.text)
image = render_scene(dialogue.scene, world.image_size)
print("the attribute probe reads the main object as:", probe_image(image))
image_grid([image], [dialogue.caption], ncols=1, size=2.5)"""),
    new_markdown_cell(MARKER),
]


def main():
    split = split_at_marker(PATH, MARKER)
    write_notebook(PATH, CELLS + (split[1] if split else []))


if __name__ == "__main__":
    main()
