"""The prompts of the decision set, and their votes when they come with the data.

- ShapeStories (``tiny``/``ci``): `gill_lite.world.prompts.make_decision_prompts`; nobody has voted yet, so the
  simulated judges (and whoever clicks in the widget) vote later.
- The paper (``paper``): GILL's published PartiPrompts decision TSVs (``PartiPromptsAllDecisions_*.tsv``:
  ``Prompt, Category, Challenge, Note, Decisions`` with 5 comma-separated votes), read with the world's
  `gill_lite.data.load_decisions`; the votes come with the file.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TsvPrompt:
    """A prompt read from a decision TSV (PartiPrompts): no ground-truth shape unless the Note holds one."""

    id: str
    text: str
    category: str
    challenge: str = ""
    note: str = ""
    shape: object = None


def load_decision_tsv(path, skip_bad: bool = False) -> tuple[list[TsvPrompt], list[list[str]] | None]:
    """Prompts and votes of a decision TSV; votes is None when the file has no Decisions (a prompts file).

    A ShapeStories export keeps its ground truth in the Note column (``kind=...;colour=...``): it comes back
    as ``shape``, so the same file can be judged again.
    """
    from gill_lite.data import load_decisions, parse_shape_note

    rows = load_decisions(path, skip_bad=skip_bad)
    prompts = [TsvPrompt(f"tsv-{i:05d}", r.prompt, r.category, r.challenge, r.note, parse_shape_note(r.note) if r.note else None)
               for i, r in enumerate(rows)]
    voted = [bool(r.decisions) for r in rows]
    if any(voted) and not all(voted):
        missing = [r.line for r in rows if not r.decisions][:5]
        raise ValueError(f"{path}: some prompts have votes and some do not (e.g. lines {missing})")
    return prompts, ([list(r.decisions) for r in rows] if all(voted) and rows else None)


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
            f"{path} not found: download GILL's data/PartiPromptsAllDecisions_Alignment.tsv "
            "(github.com/kohjingyu/gill) there (see docs/decision.md)")
    return load_decision_tsv(path)
