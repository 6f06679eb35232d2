"""The prompts of the decision set, and their votes when they come with the data.

- ShapeStories (``tiny``/``ci``): `gill_lite.world.prompts.make_decision_prompts`; nobody has voted yet, so the
  simulated judges (and whoever clicks in the widget) vote later.
- The paper (``paper``): GILL's published PartiPrompts decision TSVs, read with the world's
  `gill_lite.data.load_decisions` in either published layout: ``PartiPromptsAllDecisions_*.tsv`` (``Prompt,
  Category, Challenge, Note, Decisions``, comma-separated votes, 5 on most rows and fewer on some) or
  ``PartiPromptsDecisionsConfident.tsv`` (the last column ``Decision``, one label). The votes or labels come
  with the file, as a `PublishedVotes`.
"""
from __future__ import annotations

from dataclasses import dataclass


class PublishedVotes(list):
    """The votes of a published decision TSV (one list per prompt, any length; ``[]`` for every row of the
    confident layout) with the labels the published rule gives them (``.labels``: "gen"/"ret"/None) and the
    loader's counts (``.counts``, see `gill_lite.data.load_decisions`). A list of vote lists, so code that
    takes votes keeps working; `gill_lite.decision.stage.judge_collection` uses ``.labels`` as they are."""

    def __init__(self, votes, labels, counts):
        super().__init__(votes)
        if len(labels) != len(self):
            raise ValueError(f"{len(self)} vote rows but {len(labels)} labels")
        self.labels, self.counts = list(labels), dict(counts)

    @property
    def layout(self) -> str:
        return self.counts.get("layout", "votes")


@dataclass(frozen=True)
class TsvPrompt:
    """A prompt read from a decision TSV (PartiPrompts): no ground-truth shape unless the Note holds one."""

    id: str
    text: str
    category: str
    challenge: str = ""
    note: str = ""
    shape: object = None


def load_decision_tsv(path, skip_bad: bool = False) -> tuple[list[TsvPrompt], PublishedVotes | None]:
    """Prompts and votes of a decision TSV (`PublishedVotes`, with labels and counts); votes is None when the
    file has no votes (a prompts file).

    A ShapeStories export keeps its ground truth in the Note column (``kind=...;colour=...``): it comes back
    as ``shape``, so the same file can be judged again.
    """
    from gill_lite.data import load_decisions, parse_shape_note

    rows = load_decisions(path, skip_bad=skip_bad)
    prompts = [TsvPrompt(f"tsv-{i:05d}", r.prompt, r.category, r.challenge, r.note, parse_shape_note(r.note) if r.note else None)
               for i, r in enumerate(rows)]
    voted = [bool(r.decisions) or r.decision is not None for r in rows]
    if any(voted) and not all(voted):
        missing = [r.line for r, v in zip(rows, voted) if not v][:5]
        raise ValueError(f"{path}: some prompts have votes and some do not (e.g. lines {missing})")
    if not (rows and all(voted)):
        return prompts, None
    return prompts, PublishedVotes([list(r.decisions) for r in rows], [r.label for r in rows], rows.counts)


def decision_prompts(profile):
    """The profile's decision prompts and their votes (None for ShapeStories, where the judges vote)."""
    if profile.uses_world:
        from gill_lite.world.prompts import make_decision_prompts

        w = profile.world
        return make_decision_prompts(w.n_decision_prompts, w.seed, w.heldout_fraction), None
    if not profile.data.decision_tsv:
        raise ValueError(f"profile {profile.name!r} names no decision TSV (profile.data.decision_tsv)")
    path = profile.resolve(profile.data.decision_tsv)
    import os

    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: download GILL's data/PartiPromptsAllDecisions_Alignment.tsv (or "
            "data/PartiPromptsDecisionsConfident.tsv) from github.com/kohjingyu/gill there (see docs/decision.md)")
    return load_decision_tsv(path)
