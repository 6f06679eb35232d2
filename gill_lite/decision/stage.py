"""The decision stage end to end, as notebook 05 and ``bench/decision.py`` run it:

    prompts -> collect (generate + retrieve + [IMG0] and top score) -> judge (5 judges, maybe a person) -> confidence rule
            -> train the decision head -> how often each path is chosen

Each step finds its finished output under ``<run_dir>/decision/`` (collection, votes) or
``<run_dir>/gill/decision/`` (the head) and reuses it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gill_lite.paper_numbers import ANNOTATOR_F1

from . import judges as J
from .collect import Collection
from .data import PublishedVotes


def decision_root(profile) -> Path:
    return Path(profile.run_dir) / "decision"


def human_votes_path(profile) -> Path:
    """Where the judging widget saves a person's votes."""
    return decision_root(profile) / "human_votes.jsonl"


def corpus_index(profile, pipe):
    """The retrieval index of GILL's training images (the corpus train split, or CC3M at ``paper``), built from
    the training run's cached image features; its images are read from the training set on demand."""
    import torch

    from gill_lite.inference import RetrievalIndex
    from gill_lite.train.caches import image_features
    from gill_lite.train.data import training_set

    dataset = training_set(profile)
    feats = image_features(dataset, pipe.parts.image_encoder, Path(profile.run_dir) / "cache")
    chunks = [RetrievalIndex.from_features(pipe.model, feats[list(range(s, min(len(dataset), s + 4096)))],
                                           dataset.ids[s:s + 4096]) for s in range(0, len(dataset), 4096)]
    return RetrievalIndex(list(dataset.ids), torch.cat([c.embeddings for c in chunks]), dataset.load_images)


def frozen_fingerprint(profile) -> str:
    """The frozen parts' names plus `weights_digest` of every local weight file, the generator's UNet included
    (its ``config_name`` covers the text encoder only): a rebuilt stand-in (same config, new weights) makes new
    images, so it needs a new collection. Hub ids hash as names."""
    from gill_lite.backbones.cards import weights_digest

    parts = []
    for cfg in (profile.lm, profile.image_encoder, profile.generator):
        path = Path(profile.resolve(cfg.name_or_path))
        parts.append(f"{cfg.name_or_path}:{weights_digest(path) if path.is_dir() else ''}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def collect_for_profile(profile, pipe, prompts=None, progress: bool = True) -> Collection:
    """Find-or-build the profile's collection under ``<run_dir>/decision/collection`` (resumable), with ``pipe``
    (a `gill_lite.inference.GillPipeline`) retrieving from GILL's training images (`corpus_index`), as the
    published decision set did; ``pipe``'s own index is left as it is."""
    from .collect import collect_decisions, model_fingerprint
    from .data import decision_prompts

    if prompts is None:
        prompts, _ = decision_prompts(profile)
    on_corpus = pipe.with_index(corpus_index(profile, pipe))
    return collect_decisions(prompts, decision_root(profile) / "collection", on_corpus, seed=profile.decision.seed,
                             batch_size=profile.decision.collect_batch_size,
                             fingerprint=f"{model_fingerprint(pipe.model)}-{frozen_fingerprint(profile)}",
                             progress=progress)


@dataclass
class Judged:
    """The votes (5 per prompt, a person's in place of judge 0 where they clicked) and what follows from them."""

    votes: list[list[str]]
    labels: list[str | None]
    counts: dict
    report: dict
    evidence: dict = field(default_factory=dict)
    n_human: int = 0


def judge_collection(profile, collection: Collection, eval_clip=None, votes=None, human_path=None) -> Judged:
    """Vote on every collected prompt and apply the confidence rule.

    ``votes`` given (a published TSV) are used as they are; otherwise the simulated judges vote from the
    probe and ``eval_clip`` evidence. A person's votes from ``human_path`` (the widget's file) replace
    judge 0's on the prompts they judged. Writes ``decisions.tsv`` (the published format) and ``votes.json``.
    """
    from gill_lite.io import atomic_write_json
    from gill_lite.widgets import load_votes, merge_votes

    evidence = {}
    if votes is None:
        shapes = collection.shapes()
        evidence = J.gather_evidence(collection.images("gen"), collection.images("ret"), collection.texts,
                                     shapes if all(s is not None for s in shapes) else None, eval_clip)
        votes = J.simulate_votes(evidence, J.judges_from_config(profile.decision), seed=profile.decision.seed)
    if len(votes) != len(collection):
        raise ValueError(f"{len(votes)} vote rows for {len(collection)} collected prompts")
    if isinstance(votes, PublishedVotes):
        return _judge_published(profile, collection, votes, human_path)
    root = collection.root
    human = load_votes(human_path) if human_path is not None else {}
    votes = merge_votes(votes, collection.ids, human)
    labels = J.confident_labels(votes)
    atomic_write_json(root / "votes.json", {"ids": collection.ids, "votes": votes, "labels": labels,
                                           "n_human": sum(i in human for i in collection.ids)})
    if all(r.get("shape") for r in collection.records):
        _export_tsv(collection, votes, root / "decisions.tsv")
    return Judged(votes, labels, J.label_counts(labels), J.agreement_report(votes, labels), evidence,
                  sum(i in human for i in collection.ids))


def _judge_published(profile, collection: Collection, published: PublishedVotes, human_path=None) -> Judged:
    """The published labels as they are (the published rule on any number of votes, or the confident layout's
    one label). The agreement figures need ``n_judges`` votes per prompt: they are computed on the rows that
    have exactly that many (``report["n_rows"]``), and are NaN for the confident layout, which has no votes."""
    from gill_lite.io import atomic_write_json
    from gill_lite.widgets import load_votes

    human = load_votes(human_path) if human_path is not None else {}
    ignored = sum(i in human for i in collection.ids)
    if ignored:  # published labels are the paper's data: a person's clicks must not change them
        print(f"{ignored} votes in {human_path} ignored: the published decision labels are used as released")
    labels = list(published.labels)
    n = profile.decision.n_judges
    full = [i for i, v in enumerate(published) if len(v) == n]
    if full:
        report = J.agreement_report([published[i] for i in full], [labels[i] for i in full])
    else:
        report = {k: float("nan") for k in ("fleiss_kappa", "pairwise_agreement", "loo_f1", "ceiling_f1")}
    report |= {"n_rows": len(full), "published_counts": published.counts}
    atomic_write_json(collection.root / "votes.json", {"ids": collection.ids, "votes": list(published),
                                                       "labels": labels, "n_human": 0,
                                                       "published_counts": published.counts})
    return Judged(list(published), labels, J.label_counts(labels), report, {}, 0)


def _export_tsv(collection: Collection, votes, path) -> None:
    from gill_lite.data import export_decisions
    from gill_lite.io import atomic_path
    from gill_lite.world.prompts import DecisionPrompt

    prompts = [DecisionPrompt(r["id"], r["text"], s, r["category"]) for r, s in zip(collection.records, collection.shapes())]
    with atomic_path(path) as tmp:
        export_decisions(prompts, tmp, votes)


def confident_set(collection: Collection, labels):
    """The confident prompts in prompt order: (the decision head's inputs (N, H + 1), labels, their indices in
    the collection)."""
    keep = [i for i, lab in enumerate(labels) if lab is not None]
    features = collection.features()
    return features[keep], [labels[i] for i in keep], keep


def choice_shares(head, features, categories) -> dict:
    """How often the trained head picks retrieval for corpus prompts and generation for novel ones (all
    collected prompts, confident or not); a category without prompts is left out."""
    from .classifier import predict_labels

    pred = predict_labels(head, features)
    out = {}
    for category, wanted, key in (("corpus", "ret", "retrieval_share_corpus"), ("novel", "gen", "generation_share_novel")):
        picks = [p for p, c in zip(pred, categories) if c == category]
        if picks:  # PartiPrompts have other categories: then there is nothing to report (and NaN is not JSON)
            out[key] = float(np.mean([p == wanted for p in picks]))
    return out


def label_by_category(labels, categories) -> dict:
    """Confident labels per prompt category, e.g. {"corpus": {"gen": 10, "ret": 300, "dropped": 90}, ...}."""
    out = {}
    for category in sorted(set(categories)):
        out[category] = J.label_counts([lab for lab, c in zip(labels, categories) if c == category])
    return out


def judging_items(collection: Collection, limit: int | None = None):
    """The collected prompts as `gill_lite.widgets.JudgingItem`s (images read from the collection's files)."""
    from gill_lite.widgets import JudgingItem

    records = collection.records[:limit] if limit else collection.records
    return [JudgingItem(r["id"], r["text"], collection.root / r["gen"], collection.root / r["ret"]) for r in records]


def load_votes_file(collection: Collection) -> dict:
    return json.loads((collection.root / "votes.json").read_text())


def validation_ceiling(judged: Judged, keep: list[int], n_train: int) -> float:
    """The judges' ceiling F1 on the classifier's validation prompts (the same prompts it is scored on).

    Only prompts with the usual number of votes count (published rows with fewer cannot be scored judge by
    judge); NaN when there are none (the published confident layout has no votes)."""
    val = keep[n_train:]
    lengths = [len(judged.votes[i]) for i in val]
    n = max(set(lengths), key=lengths.count) if lengths else 0
    val = [i for i in val if len(judged.votes[i]) == n]
    if not val or n == 0:
        return float("nan")
    return float(np.mean(J.ceiling_f1([judged.votes[i] for i in val], [judged.labels[i] for i in val])))


def run_decision_stage(profile, pipe=None, progress: bool = True) -> dict:
    """Everything notebook 05 does, without the pictures: returns the figures (and the objects, under "_").

    ``pipe``: a `gill_lite.inference.GillPipeline` (default: `GillPipeline.for_profile`, its frozen parts on
    `gill_lite.backbones.default_device`); its parts must sit on its model's device (`check_frozen_devices`).
    The decision head it ends with is the one trained (or found) here."""
    from gill_lite.backbones.frozen import check_frozen_devices

    from .classifier import fit_decision, fit_img0_only, head_of
    from .data import decision_prompts

    if pipe is None:
        from gill_lite.inference import GillPipeline

        pipe = GillPipeline.for_profile(profile, with_decision=False)  # the head is trained (or found) below
    model, parts = pipe.model, pipe.parts
    check_frozen_devices(parts, model)  # a frozen part left on another device would run there (or fail) silently
    prompts, published_votes = decision_prompts(profile)
    collection = collect_for_profile(profile, pipe, prompts, progress=progress)
    judged = judge_collection(profile, collection, getattr(parts, "eval_clip", None), published_votes,
                              human_votes_path(profile))
    features, labels, keep = confident_set(collection, judged.labels)
    result = fit_decision(profile, model, features, labels, progress=progress)
    img0_only = fit_img0_only(profile, collection.img0_states()[keep], labels)
    shares = choice_shares(head_of(model), collection.features(), collection.categories)
    figures = {
        "n_prompts": len(collection),
        "labels": judged.counts,
        "labels_by_category": label_by_category(judged.labels, collection.categories),
        "fleiss_kappa": judged.report["fleiss_kappa"],
        "judge_loo_f1": judged.report["loo_f1"],
        "judges_ceiling_f1": validation_ceiling(judged, keep, result.n_train),
        "judges_ceiling_f1_all": judged.report["ceiling_f1"],
        "classifier_macro_f1": {"value": result.val["macro_f1"], "paper_ceiling": ANNOTATOR_F1},
        "classifier_accuracy": result.val["accuracy"],
        "classifier_macro_f1_img0_only": img0_only["macro_f1"],
        "confusion": result.val["confusion"],
        "n_train": result.n_train,
        "n_val": result.n_val,
        "n_human_votes": judged.n_human,
        **shares,
    }
    figures["_"] = {"collection": collection, "judged": judged, "result": result, "pipe": pipe}
    return figures
