"""Five simulated annotators who compare a generated and a retrieved image with the prompt's ground truth.

The paper asked 5 people per PartiPrompt "which image matches the prompt better: retrieved, generated or the
same?". Here each judge sees the same evidence a careful person would use -- how many of the prompt's
attributes (kind, colour, size, position) the probe reads in each image, and how close the evaluation CLIP puts
each image to the prompt text -- and adds its own seeded perception noise, its own threshold for calling two
images "the same", a small personal preference for one kind of image, and the occasional lapse. So the judges
disagree the way real annotators do, and the paper's confidence rule (`gill_lite.data.formats.confidence_label`)
keeps only the prompts they mostly agree on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .metrics import fleiss_kappa, macro_f1, pairwise_agreement

VOTES = ("ret", "gen", "same")  # what a judge can say
LABELS = ("gen", "ret")  # what a confident prompt can be labelled; index = class id (as the published notebook)


@dataclass(frozen=True)
class Judge:
    """One annotator's temperament (drawn from a seed; see `make_judges`)."""

    index: int
    noise: float  # std of the perception noise on the score difference (1.0 = all four attributes)
    tie: float  # |difference| below this reads as "same"
    bias: float  # > 0 prefers the generated image a little, < 0 the retrieved one
    clip_weight: float  # how much the CLIP similarity counts next to the attributes
    lapse: float  # chance of an arbitrary vote (a misclick, a lapse of attention)


def make_judges(n: int = 5, noise: float = 0.15, tie: float = 0.1, lapse: float = 0.05,
                clip_weight: float = 0.15, seed: int = 0) -> list[Judge]:
    """``n`` judges whose temperaments vary around the given values (seeded)."""
    if n < 1:
        raise ValueError("need at least one judge")
    if noise < 0 or tie < 0 or not 0 <= lapse <= 1:
        raise ValueError("noise and tie must be >= 0, lapse in [0, 1]")
    judges = []
    for j in range(n):
        rng = np.random.default_rng([seed, 5, j])
        judges.append(Judge(
            index=j,
            noise=float(noise * rng.uniform(0.7, 1.3)),
            tie=float(tie * rng.uniform(0.5, 1.5)),
            bias=float(rng.normal(0.0, noise / 3)),
            clip_weight=float(clip_weight * rng.uniform(0.5, 1.5)),
            lapse=float(lapse * rng.uniform(0.5, 1.5)),
        ))
    return judges


def judges_from_config(decision_cfg) -> list[Judge]:
    """The judges of a profile's `DecisionConfig`."""
    return make_judges(decision_cfg.n_judges, decision_cfg.judge_noise, decision_cfg.judge_tie,
                       decision_cfg.judge_lapse, decision_cfg.judge_clip_weight, decision_cfg.seed)


def attribute_match(probed, shape) -> float:
    """Share of ``shape``'s four attributes that the probe read (``probed`` None = nothing recognisable)."""
    if probed is None:
        return 0.0
    from gill_lite.world.attributes import ATTRIBUTES

    return sum(getattr(probed, a) == getattr(shape, a) for a in ATTRIBUTES) / len(ATTRIBUTES)


def gather_evidence(gen_images: np.ndarray, ret_images: np.ndarray, texts: Sequence[str], shapes=None,
                    eval_clip=None, batch_size: int = 256) -> dict[str, np.ndarray]:
    """What the judges look at, per prompt: ``gen_match``/``ret_match`` (attribute probe, NaN without ground
    truth shapes) and ``gen_clip``/``ret_clip`` (evaluation-CLIP cosine with the prompt text, NaN without CLIP).

    ``gen_images``/``ret_images``: uint8 (N, H, W, 3); ``shapes``: the prompts' `Shape`s or None (real data).
    """
    n = len(texts)
    if len(gen_images) != n or len(ret_images) != n:
        raise ValueError(f"{n} prompts but {len(gen_images)} generated and {len(ret_images)} retrieved images")
    evidence = {k: np.full(n, np.nan) for k in ("gen_match", "ret_match", "gen_clip", "ret_clip")}
    if shapes is not None:
        from gill_lite.world.probe import probe_image

        for i, shape in enumerate(shapes):
            evidence["gen_match"][i] = attribute_match(probe_image(gen_images[i]), shape)
            evidence["ret_match"][i] = attribute_match(probe_image(ret_images[i]), shape)
    if eval_clip is not None:
        import torch

        with torch.no_grad():
            for start in range(0, n, batch_size):
                sl = slice(start, start + batch_size)
                t = eval_clip.embed_texts(list(texts[sl])).float()
                for kind, images in (("gen", gen_images), ("ret", ret_images)):
                    e = eval_clip.embed_images(np.asarray(images[sl])).float()
                    evidence[f"{kind}_clip"][sl] = (e * t).sum(-1).cpu().numpy()
    return evidence


def score_difference(evidence: dict[str, np.ndarray], clip_weight: float) -> np.ndarray:
    """How much better the generated image fits its prompt than the retrieved one (> 0: generated is better).

    Attributes count 0.25 each; the CLIP difference is measured in standard deviations of all the CLIP
    similarities (so it means the same for any CLIP) and weighted by ``clip_weight``. Missing evidence (NaN)
    counts as no difference.
    """
    attr = np.nan_to_num(evidence["gen_match"] - evidence["ret_match"])
    clip = np.concatenate([evidence["gen_clip"], evidence["ret_clip"]])
    scale = np.nanstd(clip) if np.isfinite(clip).any() else 1.0
    clip_diff = np.nan_to_num((evidence["gen_clip"] - evidence["ret_clip"]) / (scale or 1.0))
    return attr + clip_weight * clip_diff


def simulate_votes(evidence: dict[str, np.ndarray], judges: Sequence[Judge], seed: int = 0) -> list[list[str]]:
    """One vote ("ret", "gen" or "same") per prompt and judge: ``votes[i][j]`` is judge j on prompt i."""
    n = len(evidence["gen_match"])
    columns = []
    for judge in judges:
        rng = np.random.default_rng([seed, 6, judge.index])
        noise, lapse, arbitrary = rng.normal(size=n), rng.random(n), rng.integers(len(VOTES), size=n)
        d = score_difference(evidence, judge.clip_weight) + judge.bias + judge.noise * noise
        vote = np.where(np.abs(d) < judge.tie, "same", np.where(d > 0, "gen", "ret")).astype(object)
        vote[lapse < judge.lapse] = np.array(VOTES, dtype=object)[arbitrary[lapse < judge.lapse]]
        columns.append(vote)
    return [[str(columns[j][i]) for j in range(len(judges))] for i in range(n)]


def confident_labels(votes: Sequence[Sequence[str]]) -> list[str | None]:
    """The paper's confidence rule on each prompt's votes: "gen", "ret", or None (dropped)."""
    from gill_lite.data.formats import confidence_label  # the world engineer owns the rule

    return [confidence_label(list(v)) for v in votes]


def label_counts(labels: Sequence[str | None]) -> dict[str, int]:
    """How many prompts got each label, and how many were dropped."""
    return {"gen": sum(lab == "gen" for lab in labels), "ret": sum(lab == "ret" for lab in labels),
            "dropped": sum(lab is None for lab in labels)}


def leave_one_out_f1(votes: Sequence[Sequence[str]]) -> list[float]:
    """Each judge's macro F1 (over ret/gen/same) against the plurality of the other judges (ties skipped)."""
    scores = []
    for j in range(len(votes[0])):
        truth, pred = [], []
        for row in votes:
            others = [v for k, v in enumerate(row) if k != j]
            counts = sorted(((others.count(c), c) for c in VOTES), reverse=True)
            if counts[0][0] > counts[1][0]:
                truth.append(counts[0][1])
                pred.append(row[j])
        scores.append(macro_f1(truth, pred, VOTES) if truth else float("nan"))
    return scores


def ceiling_f1(votes: Sequence[Sequence[str]], labels: Sequence[str | None]) -> list[float]:
    """The human ceiling: each judge's macro F1 (gen/ret) against the confident label, on the confident prompts.

    This is how the paper's 0.851 reads ("annotator agreement F1"): a person's own vote scored like the
    classifier against the majority; a "same" vote counts as a miss.
    """
    keep = [i for i, lab in enumerate(labels) if lab is not None]
    truth = [labels[i] for i in keep]
    return [macro_f1(truth, [votes[i][j] for i in keep], LABELS) for j in range(len(votes[0]))]


def agreement_report(votes: Sequence[Sequence[str]], labels: Sequence[str | None] | None = None) -> dict:
    """Fleiss' kappa, pairwise agreement, each judge's leave-one-out F1, and the ceiling F1 (see above)."""
    labels = confident_labels(votes) if labels is None else labels
    loo, ceiling = leave_one_out_f1(votes), ceiling_f1(votes, labels)
    return {
        "fleiss_kappa": fleiss_kappa(votes, VOTES),
        "pairwise_agreement": pairwise_agreement(votes),
        "loo_f1_per_judge": loo,
        "loo_f1": float(np.nanmean(loo)),
        "ceiling_f1_per_judge": ceiling,
        "ceiling_f1": float(np.mean(ceiling)),
        "vote_shares": {c: sum(row.count(c) for row in votes) / (len(votes) * len(votes[0])) for c in VOTES},
    }
