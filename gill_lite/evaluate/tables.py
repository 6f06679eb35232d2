"""Markdown tables of the VIST results beside the paper's numbers, and the metrics notebook 06 records."""
from __future__ import annotations

from .contexts import SETTING_TITLES

MODEL_TITLES = {"gill": "GILL", "sd": "generator alone (SD baseline)", "clip_text": "text-only CLIP"}


def _title(name: str) -> str:
    model, setting = name.split("/", 1)
    return f"{MODEL_TITLES.get(model, model)}, {SETTING_TITLES.get(setting, setting)}"


def _ci(d: dict, pct: bool = False) -> str:
    f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3f}")
    return f"{f(d['mean'])} [{f(d['low'])}, {f(d['high'])}]"


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def generation_table(summary: dict) -> str:
    """CLIP similarity of the generated last image to the true one, with 95% intervals and the paper's figure;
    the probe's all-attributes accuracy and the setting's ceiling beside it when the world knows them."""
    gen, ceil = summary["generation"]["settings"], summary.get("ceilings", {})
    rows = []
    for name, row in gen.items():
        paper = row.get("paper_clip_similarity")
        setting = name.split("/", 1)[1]
        acc = _ci(row["attributes"]["all"], pct=True) if "attributes" in row else "-"
        c = ceil.get(setting, {})
        ceiling = (f"{100 * c['determined']['all']:.0f}% / {100 * c['best_expected']['all']:.0f}%" if c else
                   "100% / 100%" if setting == "oracle" else "-")
        rows.append([_title(name), _ci(row["clip_similarity"]), f"{paper:.3f}" if paper else "-", acc, ceiling])
    header = ["model, input", "CLIP similarity [95% CI]", "paper", "all attributes right",
              "ceiling (determined / best expected)"]
    return _table(header, rows)


def attribute_table(summary: dict) -> str:
    """Per attribute accuracy of each setting's generated image, with that setting's ceiling in brackets."""
    gen, ceil = summary["generation"]["settings"], summary.get("ceilings", {})
    attrs = ("kind", "colour", "size", "position", "all")
    rows = []
    for name, row in gen.items():
        if "attributes" not in row:
            continue
        c = ceil.get(name.split("/", 1)[1], {}).get("determined", {})
        rows.append([_title(name)] + [
            f"{100 * row['attributes'][a]['mean']:.0f}%" + (f" ({100 * c[a]:.0f}%)" if a in c else "") for a in attrs])
    return _table(["model, input"] + [f"{a} (ceiling)" for a in attrs], rows)


def retrieval_table(summary: dict, equivalent: bool = False) -> str:
    """Recall@k of the true last image among every story image (the story's own images excluded); with
    ``equivalent``, images showing the same thing as the target (same shape / identical pixels) count too."""
    ret = summary["retrieval"]["settings"]
    if equivalent:
        ret = {k: {**v, "paper_R@1": None} for k, v in summary["retrieval"].get("equivalent", {}).get("settings", {}).items()}
        if not ret:
            return "(no equivalent images known)"
    ks = [k for k in next(iter(ret.values())) if k.startswith("R@")]
    rows = []
    for name, row in ret.items():
        paper = row.get("paper_R@1")
        rows.append([_title(name)] + [_ci(row[k], pct=True) for k in ks] + [f"{100 * paper:.1f}%" if paper else "-"])
    return _table(["model, input"] + ks + ["paper R@1"], rows)


def orderings_table(summary: dict) -> str:
    """The paper's orderings: claimed only when the paired difference's 95% interval is above 0."""
    rows = []
    for o in summary["generation"]["orderings"]:
        d = o["paired_difference"]
        verdict = "holds" if o["paired_holds"] else ("reversed" if d["high"] < 0 else "not shown")
        rows.append([f"{_title(o['higher'])} > {_title(o['lower'])}", o.get("metric", "clip_similarity").replace("_", " "),
                     f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]",
                     "yes" if o["separated_intervals"] else "no", verdict])
    return _table(["paper's ordering", "metric", "paired difference [95% CI]", "intervals separate", "here"], rows)


def vist_metrics(summary: dict) -> dict:
    """The numbers notebook 06 records in results.json: ``{"value", "ci", "paper"}`` per figure."""
    out: dict = {"clip_similarity": {}, "attribute_accuracy": {}, "retrieval": {}, "orderings": {}}
    for name, row in summary["generation"]["settings"].items():
        key = name.replace("/", "_")
        c = row["clip_similarity"]
        out["clip_similarity"][key] = {"value": c["mean"], "ci": [c["low"], c["high"]],
                                       "paper": row.get("paper_clip_similarity")}
        if "attributes" in row:
            out["attribute_accuracy"][key] = {a: v["mean"] for a, v in row["attributes"].items()}
    for setting, c in summary.get("ceilings", {}).items():
        out.setdefault("ceilings", {})[setting] = c["determined"]
    out["retrieval"] = _recall_metrics(summary["retrieval"]["settings"])
    for o in summary["generation"]["orderings"]:
        key = f"{o['higher']}>{o['lower']}".replace("/", "_")
        d = o["paired_difference"]
        out["orderings"].setdefault(o.get("metric", "clip_similarity"), {})[key] = {
            "value": d["mean"], "ci": [d["low"], d["high"]], "holds": bool(o["paired_holds"])}
    if summary["retrieval"].get("gill_over_clip_text_R@1") is not None:
        out["retrieval"]["gill_over_clip_text_R1"] = summary["retrieval"]["gill_over_clip_text_R@1"]
    eq = summary["retrieval"].get("equivalent")
    if eq:
        out["retrieval_equivalent"] = {"equivalence": eq["equivalence"], **_recall_metrics(eq["settings"])}
        if eq.get("gill_over_clip_text_R@1") is not None:
            out["retrieval_equivalent"]["gill_over_clip_text_R1"] = eq["gill_over_clip_text_R@1"]
    out["counts"] = summary["counts"]
    if summary.get("stories_per_second"):
        out["stories_per_second"] = summary["stories_per_second"]
    return _drop_none(out)


def _recall_metrics(settings: dict) -> dict:
    """``{"gill/captions": {"R@1": ci, ...}}`` -> ``{"gill_captions_R1": {"value", "ci", "paper"}, ...}``."""
    out = {}
    for name, row in settings.items():
        for k, v in row.items():
            if k.startswith("R@"):
                out[f"{name.replace('/', '_')}_{k.replace('@', '')}"] = {
                    "value": v["mean"], "ci": [v["low"], v["high"]],
                    "paper": row.get("paper_R@1") if k == "R@1" else None}
    return out


def _drop_none(d):
    if isinstance(d, dict):
        return {k: _drop_none(v) for k, v in d.items() if v is not None}
    return d
