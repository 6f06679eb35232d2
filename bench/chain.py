"""The context chain, link by link (story -> LM -> [IMG] states -> mapper -> image), per setting and attribute.

    .venv/bin/python bench/chain.py [--profile tiny] [--n-stories 200] [--n-fit 2000] [--no-draw] [--stage S]
                                    [--no-described] [--no-train]

Each figure is an accuracy over the evaluation stories whose inputs determine that attribute (ceiling 1.0):
``chain.<setting>.<link>.<attribute>`` with links describe / lm_probe / img_probe / mapper / image /
oracle_image (`gill_lite.evaluate.chain`; oracle_image, the generator on the last frame's true caption, is the
image link's ceiling), and ``chain.<setting>.determined.<attribute>``, the number of such stories.
Besides the three VIST settings, the diagnostic ``captions_described`` (each context image replaced by its frame's
caption: a visual prefix that read images perfectly) unless ``--no-described``. And
``chain.captions_first_<k>.mapper.kind``: the mapper link's kind after only the first k captions (no images;
the first caption names the kind, so every k determines it): how fast that link forgets;
``chain.captions_first_<k>.lm.end_mass``: the frozen LM's next-token probability of ending the text (``</s>`` or
a question) after the first k captions, the state GILL's [IMG] tokens follow;
``chain.captions_without_caption_2.mapper.kind``, the same after all 5 captions but the second (the same last
captions, one sentence fewer); ``chain.captions.mapper.position.after_<event>`` (and ``.stories``), the mapper
link's position after 5 captions split by the event that last set the position (a step, "It moves down.", or a
named place, "It slides to the middle."; `mapper_position_by_last_event`); and
``chain.restated_<n>.mapper.<attribute>``, no story at all: every world shape's caption followed by n sentences
restating its colour, size or position (`restated_captions`), which tells how many sentences were said apart
from what they say. And, a diagnostic that
is not GILL, ``chain.<setting>.mapper_recentred.<attribute>`` for the captions settings: the mapper link after
every story's [IMG] states are moved by one offset, the corpus texts' mean [IMG] state minus the probe-fit
("lm"-stream, unlabelled) stories' (`gill_lite.evaluate.chain.recentred_states`): what the mapper reads once the
stories' states sit, on average, where its training texts' did.
And ``corpus.img_probe.<img0|mean>.<attribute>``: linear probes on the [IMG] states after corpus captions (fitted
on train captions, scored on 1,000 test captions), the ``[IMG0]`` state that the retrieval head reads and the
mean of the 8 (`gill_lite.evaluate.stages.img_state_probe`).
And ``chain.captions_with_images_<frames>.describe.<attribute>`` (frames 1, 2, 4 and 1234): the LM describing the
final scene after the 5 captions with those frames' images inserted, over the stories whose captions determine
the attribute (`describe_with_images`): below ``chain.captions.describe``, the images disturb the story.
The story probes are fitted on "lm"-stream stories. Uses the trained GILL (trains what is missing, unless ``--no-train``). Prints
``name: value`` lines; writes ``runs/bench/chain.json``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gill_lite.config import get_profile, runs_root  # noqa: E402
from gill_lite.io import atomic_write_json  # noqa: E402


IMAGES_INSERTED = ((0,), (1,), (3,), (0, 1, 2, 3))  # the frames whose images `describe_with_images` inserts


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--n-stories", type=int, default=None, help="evaluation stories (default: the profile's)")
    parser.add_argument("--n-fit", type=int, default=2000, help="lm-stream stories the probes are fitted on")
    parser.add_argument("--no-draw", action="store_true", help="skip the drawn-image links (image, oracle_image)")
    parser.add_argument("--stage", default=None, help="GILL stage to measure (default: the profile's final)")
    parser.add_argument("--no-train", action="store_true",
                        help="measure only a finished GILL: fail rather than train a missing stage (e.g. with "
                             "GILL_RUNS_DIR set to another clone's runs/)")
    parser.add_argument("--no-described", action="store_true",
                        help="skip the diagnostic input with the images replaced by their descriptions")
    args = parser.parse_args(argv)
    import torch

    from gill_lite.backbones import load_frozen_parts
    from gill_lite.evaluate.chain import (DESCRIBED, chain_lines, chain_stories, describe_with_images,
                                          lm_end_mass_by_captions_read,
                                          mapper_by_sentences_after, mapper_kind_by_captions_read,
                                          mapper_kind_without_caption, mapper_position_by_last_event,
                                          mapper_recentred, measure_chain,
                                          probe_fit_stories, restated_lines)
    from gill_lite.evaluate.contexts import SETTINGS
    from gill_lite.evaluate.stages import img_state_probe
    from gill_lite.train.data import training_set
    from gill_lite.train.loop import load_gill
    from gill_lite.world.corpus import make_split
    from gill_lite.world.stories import make_stories

    torch.manual_seed(0)
    profile = get_profile(args.profile)
    if not profile.uses_world:
        raise SystemExit("the chain needs ground truth: a ShapeStories profile (tiny, ci)")
    parts = load_frozen_parts(profile)
    model = load_gill(profile, parts, args.stage, train_missing=not args.no_train)
    w = profile.world
    n_eval = args.n_stories or profile.eval.n_stories
    fit = probe_fit_stories(profile, args.n_fit)
    evaluation = chain_stories(make_stories(n_eval, w.seed, "eval", w.image_size), w.image_size)
    settings = SETTINGS if args.no_described else (*SETTINGS, DESCRIBED)
    chain = measure_chain(model, parts.generator, fit, evaluation, settings=settings, seed=profile.eval.seed,
                          draw=not args.no_draw)
    figures = {"profile": profile.name, "stories": n_eval, "fit_stories": len(fit), **chain_lines(chain)}
    by_k = mapper_kind_by_captions_read(model, parts.generator, evaluation)
    figures.update({f"chain.captions_first_{k}.mapper.kind": round(v, 4) for k, v in by_k.items()})
    by_event = mapper_position_by_last_event(model, parts.generator, evaluation)
    for event, (n, accuracy) in by_event.items():
        figures[f"chain.captions.mapper.position.after_{event}"] = round(accuracy, 4)
        figures[f"chain.captions.mapper.position.after_{event}.stories"] = n
    ends = lm_end_mass_by_captions_read(model, evaluation)
    figures.update({f"chain.captions_first_{k}.lm.end_mass": round(v, 4) for k, v in ends.items()})
    for frames in IMAGES_INSERTED:
        described = describe_with_images(model, evaluation, frames)
        name = "".join(str(i + 1) for i in frames)
        figures.update({f"chain.captions_with_images_{name}.describe.{a}": round(v, 4)
                        for a, v in described.items() if v is not None})
    figures["chain.captions_without_caption_2.mapper.kind"] = round(
        mapper_kind_without_caption(model, parts.generator, evaluation, drop=1), 4)
    figures.update(restated_lines(mapper_by_sentences_after(model, parts.generator)))
    corpus = training_set(profile).img_texts[: args.n_fit]  # what the [IMG] side trained on (a seeded order)
    for setting in ("captions", "captions_images"):
        recentred = mapper_recentred(model, parts.generator, corpus, fit, evaluation, setting)
        figures.update({f"chain.{setting}.mapper_recentred.{a}": round(v, 4) for a, v in recentred.items()
                        if v is not None})
    w_split = dict(seed=w.seed, fraction=w.heldout_fraction, image_size=w.image_size)
    probe = img_state_probe(model, make_split("train", w.n_train, **w_split)[: args.n_fit],
                            make_split("test", min(1000, w.n_test), **w_split))
    figures.update({f"corpus.img_probe.{which}.{a}": round(v, 4) for which, accs in probe.items()
                    for a, v in accs.items()})
    for name, value in figures.items():
        print(f"{name}: {value}")
    atomic_write_json(runs_root() / "bench" / "chain.json", {"figures": figures, "chain": chain})
    return figures


if __name__ == "__main__":
    main()
