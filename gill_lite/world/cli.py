"""``gill-lite world --profile P --out DIR``: render ShapeStories and write it in the real formats.

Writes, under DIR (default ``runs/<profile>/world``):
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


def add_arguments(parser) -> None:
    parser.add_argument("--profile", default=None, help="ci, tiny or paper (default: $GILL_PROFILE or tiny)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<profile>/world)")


def write_world(profile, out) -> dict:
    """Write every ShapeStories export for ``profile`` under ``out``; returns the ``world.json`` summary."""
    from tqdm.auto import tqdm

    from gill_lite.data.formats import export_cc3m, export_decisions, export_vist
    from gill_lite.io import atomic_write_json, atomic_write_text

    from .corpus import heldout_shapes, make_corpus
    from .dialogue import make_dialogues
    from .prompts import make_decision_prompts
    from .stories import information_ceiling, make_stories
    from .streams import STREAMS

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
        "decision_categories": {c: sum(p.category == c for p in prompts) for c in ("corpus", "novel")},
        "heldout_combinations": [s.to_dict() for s in sorted(heldout_shapes(w.seed, w.heldout_fraction))],
        "information_ceiling": information_ceiling(stories),
        "streams": STREAMS,
    }
    atomic_write_json(out / "world.json", summary)
    return summary


def run(args) -> int:
    from gill_lite.config import get_profile

    profile = get_profile(args.profile)
    out = Path(args.out) if args.out else profile.run_dir / "world"
    summary = write_world(profile, out)
    print(f"wrote ShapeStories ({profile.name}) to {out}")
    for name, n in summary["sizes"].items():
        print(f"  {name}: {n}")
    for setting, shares in summary["information_ceiling"].items():
        print(f"  ceiling {setting}: all four attributes determined in {shares['all']:.0%} of stories")
    return 0
