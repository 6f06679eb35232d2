"""How good the stand-ins are: the figures `bench/standins.py` prints and the model cards record.

  * language model: perplexity on held-out captions (test split) and evaluation-stream stories; greedy samples;
  * CLIPs: zero-shot text-to-image recall@1 in pools of 100 held-out corpus images (test split: seen
    combinations; heldout split: novel combinations);
  * generator: probe accuracy (each attribute and all four) of images generated from held-out captions;
  * probe: accuracy on fresh renders (the ceiling a perfect generator would reach).
"""
from __future__ import annotations

from .generator import generator_accuracy, generator_eval_sets
from .image_encoder import clip_eval_sets, clip_recall
from .language_model import SAMPLE_PROMPTS, greedy_samples, heldout_texts, text_perplexity


def measure_standins(parts, profile, n_text: int = 200, n_clip: int = 500, n_gen: int = 216) -> tuple[dict, dict]:
    """(figures, samples) for loaded `FrozenParts`; figures are flat ``name -> number``."""
    from gill_lite.world.corpus import make_split, render_images
    from gill_lite.world.probe import attribute_accuracy

    from .recipes import standin_recipe

    w = profile.world
    figures: dict = {}
    lm = parts.lm
    for kind, texts in heldout_texts(w, n_text).items():
        figures[f"lm_perplexity_{kind}"] = round(text_perplexity(lm.model, lm.tokenizer, texts), 3)
    samples = {"lm_greedy": greedy_samples(lm.model, lm.tokenizer, SAMPLE_PROMPTS)}
    sets = clip_eval_sets(w, n_clip)
    for name, enc in (("clip", parts.image_encoder), ("eval_clip", parts.eval_clip)):
        for split, (images, captions, shapes) in sets.items():
            for k, v in clip_recall(enc, images, captions, shapes).items():
                figures[f"{name}_{split}_{k}"] = v
    seed = standin_recipe(profile).generator.seed
    for split, examples in generator_eval_sets(w, n_gen).items():
        for k, v in generator_accuracy(parts.generator, examples, seed=seed).items():
            figures[f"generator_{split}_{k}"] = v
    fresh = make_split("test", n_clip, w.seed + 1, w.heldout_fraction, w.image_size)
    for k, v in attribute_accuracy(render_images(fresh, w.image_size), [e.shape for e in fresh]).items():
        figures[f"probe_fresh_renders_{k}"] = round(v, 4)
    return figures, samples


def card_figures(figures: dict) -> dict[str, dict]:
    """Split bench figures by the stand-in folder whose card records them."""
    return {
        "lm": {k.removeprefix("lm_"): v for k, v in figures.items() if k.startswith("lm_")},
        "clip": {k.removeprefix("clip_"): v for k, v in figures.items() if k.startswith("clip_")},
        "eval_clip": {k.removeprefix("eval_clip_"): v for k, v in figures.items() if k.startswith("eval_clip_")},
        "generator": {k.removeprefix("generator_"): v for k, v in figures.items()
                      if k.startswith("generator_") or k.startswith("probe_")},
    }


def generator_showcase(generator, profile, n: int = 8, split: str = "test", seed: int = 0):
    """(ground-truth renders, generated images, captions) for the first ``n`` examples of a split."""
    from gill_lite.world.corpus import make_split, render_images

    w = profile.world
    examples = make_split(split, n, w.seed, w.heldout_fraction, w.image_size)
    captions = [e.caption for e in examples]
    return render_images(examples, w.image_size), generator.generate(generator.encode_text(captions), seed=seed), captions
