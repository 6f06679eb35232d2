"""VIST contextual generation and retrieval (the paper's Tables 1 and 2), on any list of `EvalStory`.

``pipe`` is GILL seen through five calls of `gill_lite.inference.GillPipeline` (tests pass a fake):

    pipe.img_states(context)               -> the 8 [IMG] states of one interleaved context ([IMG] forced)
                                              (or ``img_states_batch(contexts)`` for many at once)
    pipe.generate(list_of_states, seed)    -> uint8 (N, H, W, 3), GillMapper -> generator
    pipe.retrieval_queries(states)         -> (N, D) L2-normalised [IMG0] retrieval embeddings
    pipe.embed_images(images)              -> (N, D) L2-normalised image-side retrieval embeddings
    pipe.generate_from_text(prompts, seed) -> uint8 (N, H, W, 3), the generator alone (the SD baseline)

Seeds: stories are processed in fixed chunks, the same chunks for every setting, and the chunk starting at story
``i`` is generated with seed ``seed + i`` (the generator seeds its image ``k`` of a call with ``seed + k``, so
story ``i`` gets seed ``seed + i``): each story starts from the same noise in every setting, so settings differ
only by their input.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from gill_lite.paper_numbers import VIST_CLIP_SIMILARITY, VIST_ORDERINGS, VIST_RECALL_AT_1

from .contexts import BASELINE_SETTINGS, SETTINGS, baseline_prompt, build_context
from .metrics import (
    Interval,
    attribute_scores,
    bootstrap_ci,
    clip_similarity,
    ordering_holds,
    paired_bootstrap_ci,
    target_ranks,
)

@dataclass
class GenerationResults:
    """Per-story scores of every (model, setting), with images of the first ``n_examples`` stories."""

    story_ids: list[str]
    clip: dict[str, np.ndarray]  # name -> (N,) cosine similarity to the true last image
    attributes: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # name -> attribute -> (N,) hits
    lpips: dict[str, np.ndarray] = field(default_factory=dict)
    examples: dict[str, np.ndarray] = field(default_factory=dict)  # name -> uint8 (n_examples, H, W, 3)
    seconds: float = 0.0

    def summary(self, n_boot: int = 1000, seed: int = 0) -> dict:
        """Means with 95% bootstrap intervals, and the paper's orderings checked two ways:
        separated intervals (`ordering_holds`) and the paired difference's interval (same stories, same seeds)."""
        out = {"n": len(self.story_ids), "settings": {}, "orderings": []}
        for name, scores in self.clip.items():
            row = {"clip_similarity": bootstrap_ci(scores, n_boot, seed).to_dict(),
                   "paper_clip_similarity": VIST_CLIP_SIMILARITY.get(name)}
            if name in self.attributes:
                row["attributes"] = {a: bootstrap_ci(v, n_boot, seed).to_dict() for a, v in self.attributes[name].items()}
            if name in self.lpips:
                row["lpips"] = bootstrap_ci(self.lpips[name], n_boot, seed).to_dict()
            out["settings"][name] = row
        for hi, lo in VIST_ORDERINGS:
            metrics = [("clip_similarity", self.clip)]
            if hi in self.attributes and lo in self.attributes:  # the probe's exact score, where the world knows it
                metrics.append(("all_attributes", {k: v["all"] for k, v in self.attributes.items()}))
            for metric, values in metrics:
                if hi not in values or lo not in values:
                    continue
                a, b = bootstrap_ci(values[hi], n_boot, seed), bootstrap_ci(values[lo], n_boot, seed)
                diff = paired_bootstrap_ci(values[hi], values[lo], n_boot, seed)
                out["orderings"].append({
                    "higher": hi, "lower": lo, "metric": metric,
                    "separated_intervals": ordering_holds(a, b),
                    "paired_difference": diff.to_dict(), "paired_holds": diff.low > 0,
                })
        return out


def _chunks(n: int, size: int):
    for c, start in enumerate(range(0, n, size)):
        yield c, slice(start, min(n, start + size))


def evaluate_generation(
    pipe,
    eval_clip,
    stories,
    seed: int = 0,
    batch_size: int = 32,
    settings=SETTINGS,
    baselines=BASELINE_SETTINGS,
    probe: bool | None = None,
    lpips: bool = False,
    n_examples: int = 4,
    progress: bool = True,
    oracle: bool = False,
) -> GenerationResults:
    """Generate every story's last image under each setting (GILL) and each baseline setting (generator on
    text), then score it against the true last image.

    probe: score attributes with the world's probe (default: when every story knows its last shape).
    oracle: also run the generator on the true description of the last frame (``sd/oracle``, ShapeStories
    only): what any route through this generator can reach at best, so the ceilings can be read against it.
    """
    if not stories:
        raise ValueError("no stories to evaluate")
    jobs = {f"gill/{s}": [build_context(st.captions, st.images, s) for st in stories] for s in settings}
    jobs.update({f"sd/{s}": [baseline_prompt(st.captions, s) for st in stories] for s in baselines})
    shapes = [s.shape for s in stories]
    probe = all(x is not None for x in shapes) if probe is None else probe
    if oracle and all(x is not None for x in shapes):
        from gill_lite.world.captions import caption_shape

        jobs["sd/oracle"] = [caption_shape(x, 0) for x in shapes]
    return generate_and_score(
        pipe, eval_clip, jobs, np.stack([s.last_image for s in stories]), [s.id for s in stories],
        shapes if probe else None, seed, batch_size, lpips, n_examples, progress, desc="vist generation",
    )


def generate_and_score(
    pipe, eval_clip, jobs: dict, refs, ids, shapes=None, seed: int = 0, batch_size: int = 32,
    lpips: bool = False, n_examples: int = 4, progress: bool = True, desc: str = "generation",
) -> GenerationResults:
    """Run each job and score its images against ``refs``.

    jobs: name -> one input per reference; names starting ``gill/`` hold interleaved contexts (GILL with
    ``[IMG]`` forced), ``sd/`` hold prompts for the generator alone. shapes: per-reference `Shape` for the
    probe (None entries are not probed), or None for no probe.
    """
    out = GenerationResults(story_ids=list(ids), clip={})
    start = time.perf_counter()
    bar = tqdm(total=sum(len(v) for v in jobs.values()), desc=desc, disable=not progress)
    for name, inputs in jobs.items():
        if len(inputs) != len(refs):
            raise ValueError(f"job {name}: {len(inputs)} inputs for {len(refs)} references")
        clip, hits, lp, examples = [], [], [], []
        for _, sl in _chunks(len(inputs), batch_size):  # scored chunk by chunk: memory stays flat at paper scale
            if name.startswith("gill/"):
                images = np.asarray(pipe.generate(states_of(pipe, inputs[sl]), seed + sl.start))
            elif name.startswith("sd/"):
                images = np.asarray(pipe.generate_from_text(list(inputs[sl]), seed + sl.start))
            else:
                raise ValueError(f"job names start with gill/ or sd/, got {name!r}")
            clip.append(clip_similarity(eval_clip, images, refs[sl]))
            if shapes is not None:
                keep = [i for i in range(sl.start, sl.stop) if shapes[i] is not None]
                if keep:
                    hits.append(attribute_scores(images[[i - sl.start for i in keep]], [shapes[i] for i in keep]))
            if lpips:
                from .metrics import lpips_distance

                lp.append(lpips_distance(images, refs[sl]))
            if sum(len(e) for e in examples) < n_examples:
                examples.append(images[: n_examples - sum(len(e) for e in examples)])
            bar.update(len(inputs[sl]))
        out.clip[name] = np.concatenate(clip)
        if hits:
            out.attributes[name] = {a: np.concatenate([h[a] for h in hits]) for a in hits[0]}
        if lp:
            out.lpips[name] = np.concatenate(lp)
        out.examples[name] = np.concatenate(examples) if examples else np.zeros((0,), np.uint8)
    bar.close()
    out.seconds = time.perf_counter() - start
    return out


@dataclass
class RetrievalResults:
    """Rank of the true last image for each (model, setting), over a pool of every image of the stories."""

    story_ids: list[str]
    ranks: dict[str, np.ndarray]  # name -> (N,) 0-based rank of the target after exclusions
    pool_size: int
    top: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N, 10) pool indices, best first
    seconds: float = 0.0
    duplicate_targets: int = 0  # stories whose last image has a pixel-identical twin elsewhere in the pool
    # The same ranks when images showing the same thing count as the answer too ("same shape" in ShapeStories,
    # where 216 shapes x a few jitters repeat across stories; "identical pixels" otherwise).
    ranks_equivalent: dict[str, np.ndarray] = field(default_factory=dict)
    equivalence: str = ""

    def recall(self, ks=(1, 5, 10)) -> dict[str, dict[int, float]]:
        return {name: {k: float(np.mean(r < k)) for k in ks} for name, r in self.ranks.items()}

    def summary(self, ks=(1, 5, 10), n_boot: int = 1000, seed: int = 0) -> dict:
        settings = {}
        for name, r in self.ranks.items():
            settings[name] = {
                f"R@{k}": bootstrap_ci((r < k).astype(float), n_boot, seed).to_dict() for k in ks
            }
            settings[name]["paper_R@1"] = VIST_RECALL_AT_1.get(name)
        out = {"n": len(self.story_ids), "pool_size": self.pool_size, "settings": settings,
               "duplicate_targets": self.duplicate_targets}
        if self.ranks_equivalent:
            out["equivalent"] = {"equivalence": self.equivalence, "settings": {
                name: {f"R@{k}": bootstrap_ci((r < k).astype(float), n_boot, seed).to_dict() for k in ks}
                for name, r in self.ranks_equivalent.items()}}
        return out


def pool_index(stories) -> dict[str, int]:
    """Pool index of every unique image id of the stories, in order of first appearance."""
    index: dict[str, int] = {}
    for s in stories:
        for image_id in s.image_ids:
            index.setdefault(image_id, len(index))
    return index


def retrieval_pool(stories):
    """The candidate pool as FROMAGe's ``evals/eval_vist_retrieval.py`` builds it: every *unique* image id of
    the stories (VIST photos repeat across the stories of an album), once each; for each story the pool index
    of its last image and the indices of its context images, excluded by id. Returns (images, targets,
    excluded)."""
    index = pool_index(stories)
    first = {}
    for s in stories:
        for image_id, image in zip(s.image_ids, s.images):
            first.setdefault(image_id, image)
    images = [first[i] for i in index]
    targets = np.array([index[s.image_ids[-1]] for s in stories])
    excluded = [sorted({index[i] for i in s.image_ids[:-1]} - {index[s.image_ids[-1]]}) for s in stories]
    return np.stack(images), targets, excluded


def evaluate_retrieval(
    pipe,
    image_encoder,
    stories,
    settings=("captions_images", "captions"),
    ks=(1, 5, 10),
    batch_size: int = 64,
    progress: bool = True,
) -> RetrievalResults:
    """Rank every story image for each story's last frame; the story's own earlier images are excluded.

    Models: GILL (its [IMG0] retrieval embedding) for each of ``settings``, and text-only CLIP (the image
    encoder's text tower on the 5 captions joined, truncated by its tokenizer) as the baseline.
    """
    start = time.perf_counter()
    pool, targets, excluded = retrieval_pool(stories)
    equivalence, equivalent = equivalent_candidates(stories, pool, targets, excluded)
    ranks, top, ranks_eq = {}, {}, {}

    def rank(name, queries, keys):
        scores = np.asarray(queries, np.float64) @ np.asarray(keys, np.float64).T
        ranks[name] = target_ranks(scores, targets, excluded)
        ranks_eq[name] = target_ranks(scores, targets, excluded, equivalent)
        masked = scores.copy()
        for q, idx in enumerate(excluded):
            masked[q, idx] = -np.inf
        top[name] = np.argsort(-masked, axis=1, kind="stable")[:, : max(ks)]

    keys = _batched(pipe.embed_images, pool, batch_size)
    for setting in settings:
        queries = []
        for _, sl in tqdm(list(_chunks(len(stories), batch_size)), desc=f"retrieval {setting}", disable=not progress):
            states = states_of(pipe, [build_context(s.captions, s.images, setting) for s in stories[sl]])
            queries.append(_np(pipe.retrieval_queries(states)))
        rank(f"gill/{setting}", np.concatenate(queries), keys)
    text = [baseline_prompt(s.captions, "captions") for s in stories]
    rank("clip_text/captions", _batched(image_encoder.embed_texts, text, batch_size),
         _batched(image_encoder.embed_images, pool, batch_size))
    return RetrievalResults([s.id for s in stories], ranks, len(pool), top, time.perf_counter() - start,
                            duplicate_targets(pool, targets, excluded), ranks_eq, equivalence)


def equivalent_candidates(stories, pool, targets, excluded) -> tuple[str, list[list[int]]]:
    """For each story, the other pool images that show the same thing as its last image: the same main shape
    when every frame's shape is known (ShapeStories), else pixel-identical images. Excluded ones are left out."""
    if all(s.frame_shapes is not None for s in stories):
        by_id = {i: sh for s in stories for i, sh in zip(s.image_ids, s.frame_shapes)}
        shapes = [by_id[i] for i in pool_index(stories)]
        kind, key = "same shape", lambda i: shapes[i]  # noqa: E731
    else:
        kind, key = "identical pixels", lambda i: np.ascontiguousarray(pool[i]).tobytes()  # noqa: E731
    groups: dict = {}
    for i in range(len(pool)):
        groups.setdefault(key(i), []).append(i)
    out = [sorted(set(groups[key(int(t))]) - {int(t)} - set(ex)) for t, ex in zip(targets, excluded)]
    return kind, out


def duplicate_targets(pool, targets, excluded) -> int:
    """How many targets have a pixel-identical image elsewhere in the (non-excluded) pool: recall counts only
    the target's own id, as the paper's does, so such twins cap R@1 below 1 for any model."""
    groups: dict[bytes, list[int]] = {}
    for i, image in enumerate(pool):
        groups.setdefault(np.ascontiguousarray(image).tobytes(), []).append(i)
    count = 0
    for t, ex in zip(targets, excluded):
        twins = set(groups[np.ascontiguousarray(pool[t]).tobytes()]) - {int(t)} - set(ex)
        count += bool(twins)
    return count


def states_of(pipe, contexts):
    """The [IMG] states of several contexts: one batched call when ``pipe`` has ``img_states_batch``."""
    if hasattr(pipe, "img_states_batch"):
        return pipe.img_states_batch(list(contexts))
    return [pipe.img_states(c) for c in contexts]


def _np(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _batched(fn, items, batch_size: int) -> np.ndarray:
    return np.concatenate([_np(fn(items[i : i + batch_size])) for i in range(0, len(items), batch_size)])


def interval(d: dict) -> Interval:
    """An `Interval` back from its dict (results.json)."""
    return Interval(**d)


def ceilings(stories) -> dict[str, dict[str, dict[str, float]]]:
    """Each setting's information ceiling from the stories' ``known`` sets, two ways:

    ``determined``: share of stories whose input fixes each attribute (and all four), as
    `gill_lite.world.stories.information_ceiling`; ``best_expected``: the accuracy a perfect reasoner gets if
    it guesses uniformly what the input leaves open (so a measured score can sit above ``determined``).
    """
    from gill_lite.world.attributes import ATTRIBUTES, VALUES

    known = [s.known for s in stories if s.known]
    if not known:
        return {}
    out = {}
    for setting in SETTINGS:
        sets = [set(k.get(setting, ())) for k in known]
        det = {a: float(np.mean([a in s for s in sets])) for a in ATTRIBUTES}
        det["all"] = float(np.mean([len(s) == len(ATTRIBUTES) for s in sets]))
        best = {a: float(np.mean([1.0 if a in s else 1 / len(VALUES[a]) for s in sets])) for a in ATTRIBUTES}
        best["all"] = float(np.mean([np.prod([1.0 if a in s else 1 / len(VALUES[a]) for a in ATTRIBUTES]) for s in sets]))
        out[setting] = {"determined": det, "best_expected": best}
    return out


# ------------------------------------------------------------------------------------ the whole evaluation
def evaluate_vist(pipe, stories, eval_cfg, skipped=(), batch_size: int = 32, progress: bool = True,
                  oracle: bool = True):
    """Run both VIST protocols on ``stories`` (list of `EvalStory`) with ``pipe`` (a
    `gill_lite.inference.GillPipeline`). Returns (summary dict, generation results, retrieval results); the
    summary is what ``results.json`` holds. Used by notebook 06, ``gill-lite eval vist`` (`evaluate_vist_file`)
    and ``bench/vist.py``.

    The pipeline's frozen parts also measure: ``pipe.parts.eval_clip`` scores generation, and the text tower of
    ``pipe.parts.image_encoder`` is the text-only CLIP baseline. eval_cfg: `gill_lite.config.EvalConfig`
    (bootstrap, recall_at, lpips, seed); oracle: add the generator on the last frame's true description
    (ShapeStories only; an upper bound).
    """
    parts = pipe.parts
    start = time.perf_counter()
    gen = evaluate_generation(pipe, parts.eval_clip, stories, seed=eval_cfg.seed, batch_size=batch_size,
                              lpips=eval_cfg.lpips, progress=progress, oracle=oracle)
    ret = evaluate_retrieval(pipe, parts.image_encoder, stories, ks=tuple(eval_cfg.recall_at),
                             batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - start
    summary = {
        "counts": {"stories": len(stories), "skipped": len(skipped), "retrieval_pool": ret.pool_size},
        "generation": gen.summary(eval_cfg.bootstrap, eval_cfg.seed),
        "retrieval": ret.summary(tuple(eval_cfg.recall_at), eval_cfg.bootstrap, eval_cfg.seed),
        "ceilings": ceilings(stories),
        "skipped": list(skipped),
        "seconds": {"generation": gen.seconds, "retrieval": ret.seconds, "total": seconds},
        "stories_per_second": len(stories) / seconds if seconds > 0 else None,
    }
    for block in (summary["retrieval"], summary["retrieval"].get("equivalent")):  # exact image; same shape
        settings = (block or {}).get("settings", {})
        if "gill/captions_images" in settings and "clip_text/captions" in settings:
            gill, clip = (settings[k]["R@1"]["mean"] for k in ("gill/captions_images", "clip_text/captions"))
            block["gill_over_clip_text_R@1"] = gill / clip if clip > 0 else None
    return summary, gen, ret


def evaluate_vist_file(profile, annotations, images, out=None, checkpoint=None, limit: int | None = None,
                       image_size: int | None = None, probe: str = "auto", batch_size: int = 32,
                       log=print) -> tuple[dict, Path]:
    """The VIST protocols on any SIS-format story file (``gill-lite eval vist``); writes ``<out>/results.json``.

    ``out`` defaults to ``runs/<profile>/eval/vist``; ``checkpoint`` (a saved `GillPipeline` or GILL stage folder)
    to the profile's trained GILL; ``image_size``
    to the world's size (256 for real data); ``probe`` ("auto", "yes", "no") scores attributes with the
    ShapeStories probe (auto: on ShapeStories profiles). The file holds settings, metrics with 95% bootstrap
    intervals, counts, and every skipped story with its reason (a missing or broken image is reported, never
    replaced); with fewer than 2 usable stories (retrieval needs a pool) it holds the ``error`` instead.
    Returns (that result, its path).
    """
    from gill_lite.inference import GillPipeline
    from gill_lite.io import atomic_write_json

    from .stories import sis_stories

    size = image_size or (profile.world.image_size if profile.uses_world else 256)
    use_probe = profile.uses_world if probe == "auto" else probe == "yes"
    stories, skipped = sis_stories(annotations, images, size, probe=use_probe)
    if limit is not None:
        stories = stories[:limit]
    for s in skipped:
        log(f"skipped {s['story']}: {s['reason']}")
    path = (Path(out) if out else profile.run_dir / "eval" / "vist") / "results.json"
    result = {"annotations": str(annotations), "images": str(images), "profile": profile.name,
              "settings": ["last_caption", "captions", "captions_images"], "image_size": size}
    if len(stories) < 2:  # retrieval needs a pool; report instead of crashing
        result.update({"error": f"only {len(stories)} usable stories", "skipped": skipped,
                       "counts": {"stories": len(stories), "skipped": len(skipped)}})
        atomic_write_json(path, result)
        return result, path
    pipe = GillPipeline.for_profile(profile, checkpoint)
    summary, _, _ = evaluate_vist(pipe, stories, profile.eval, skipped, batch_size=batch_size)
    result.update(summary)
    atomic_write_json(path, result)
    return result, path
