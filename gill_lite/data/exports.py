"""ShapeStories written in the real formats, so the loaders of the real data read it (``gill-lite world``).

Writes, under a folder (the command's default: ``runs/<profile>/world``):
    cc3m/{train,val,test,heldout}.tsv + cc3m/images/   the captioned corpus (CC3M-style TSV)
    vist/sis.json + vist/images/                       the evaluation stories (VIST SIS JSON)
    decisions/prompts.tsv                              decision prompts: the decision TSV's columns with
                                                       Decisions empty (judging fills them in)
    dialogues.jsonl                                    Q/A dialogues, one JSON object per line
    world.json                                         sizes, held-out combinations, information ceilings
"""
from __future__ import annotations

import json
from pathlib import Path


def write_world(profile, out) -> dict:
    """Write every ShapeStories export for ``profile`` under ``out``; returns the ``world.json`` summary."""
    from tqdm.auto import tqdm

    from gill_lite.io import atomic_write_json, atomic_write_text
    from gill_lite.world.corpus import heldout_shapes, make_corpus
    from gill_lite.world.dialogue import make_dialogues
    from gill_lite.world.prompts import CATEGORIES, make_decision_prompts
    from gill_lite.world.stories import information_ceiling, make_stories
    from gill_lite.world.streams import STREAMS

    from .formats import export_cc3m, export_decisions, export_vist

    w, out = profile.world, Path(out)
    corpus = make_corpus(w)
    for split, examples in corpus.items():
        export_cc3m(tqdm(examples, desc=f"corpus/{split}"), out / "cc3m", w.image_size, tsv_name=f"{split}.tsv")
    stories = make_stories(w.n_stories, w.seed, "eval", w.image_size)
    export_vist(tqdm(stories, desc="stories/eval"), out / "vist", w.image_size)
    prompts = make_decision_prompts(w.n_decision_prompts, w.seed, w.heldout_fraction)
    export_decisions(prompts, out / "decisions" / "prompts.tsv")
    dialogues = make_dialogues(w.n_dialogues, w.seed, w.image_size)
    atomic_write_text(out / "dialogues.jsonl", "".join(
        json.dumps({"id": d.id, "scene": d.scene.to_dict(), "caption": d.caption, "turns": d.turns}) + "\n"
        for d in dialogues))
    summary = {
        "profile": profile.name,
        "seed": w.seed,
        "image_size": w.image_size,
        "sizes": {**{f"corpus/{k}": len(v) for k, v in corpus.items()}, "stories/eval": len(stories),
                  "decision_prompts": len(prompts), "dialogues": len(dialogues)},
        "decision_categories": {c: sum(p.category == c for p in prompts) for c in CATEGORIES},
        "heldout_combinations": [s.to_dict() for s in sorted(heldout_shapes(w.seed, w.heldout_fraction))],
        "information_ceiling": information_ceiling(stories),
        "streams": STREAMS,
    }
    atomic_write_json(out / "world.json", summary)
    return summary
