"""``runs/<profile>/REPORT.md`` (and the README's results section at ``tiny``), made from results.json only.

Every stage recorded in results.json gets a table of its figures (nested dicts flattened to dotted keys).
Where the paper published a number for a figure, it stands in a ``paper`` column beside ours: either from
`PAPER_NUMBERS` (from `gill_lite.paper_numbers`, matched by stage and dotted key; a stage named ``06_vist``
matches ``vist``) or from the figure itself (``{"value": 0.61, "paper": 0.641}``). Stages the paper has no
numbers for are listed all the same, so the report works with whatever stages have recorded.
"""
from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

from gill_lite import paper_numbers
from gill_lite.config import REPO_ROOT, runs_root
from gill_lite.io import atomic_write_text
from gill_lite.results import NOTEBOOKS, load_results, results_path

README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"

# The paper's numbers (`gill_lite.paper_numbers`), by stage and figure key, with what each one is.
_CLIP, _R1 = paper_numbers.VIST_CLIP_SIMILARITY, paper_numbers.VIST_RECALL_AT_1
PAPER_NUMBERS: dict[str, dict] = {
    # notebook 06 records stage "vist" (gill_lite.evaluate.tables.vist_metrics: settings "gill/captions" -> key
    # "gill_captions"); its leaves carry their own "paper" values too, which win over these.
    "vist": {
        "title": "VIST: CLIP similarity of the generated last image, and recall of the retrieved one",
        "figures": {
            "clip_similarity.sd_last_caption": (_CLIP["sd/last_caption"], "Stable Diffusion, last caption"),
            "clip_similarity.sd_captions": (_CLIP["sd/captions"], "Stable Diffusion, 5 captions"),
            "clip_similarity.gill_last_caption": (_CLIP["gill/last_caption"], "GILL, last caption"),
            "clip_similarity.gill_captions": (_CLIP["gill/captions"], "GILL, 5 captions"),
            "clip_similarity.gill_captions_images": (_CLIP["gill/captions_images"], "GILL, 5 captions + 4 images"),
            "retrieval.clip_text_captions_R1": (_R1["clip_text/captions"], "R@1, text-only CLIP, 5 captions"),
            "retrieval.fromage_captions_images_R1": (_R1["fromage/captions_images"], "R@1, FROMAGe, 5 captions + 4 images"),
            "retrieval.gill_captions_images_R1": (_R1["gill/captions_images"], "R@1, GILL, 5 captions + 4 images"),
        },
    },
    # notebook 05 records stage "decision" (gill_lite.decision)
    "decision": {
        "title": "Generate-or-retrieve: the judged set and the classifier",
        "figures": {
            "n_prompts": (paper_numbers.DECISION_PROMPTS, "prompts judged (PartiPrompts)"),
            "labels.gen": (paper_numbers.DECISION_COUNTS["gen"], "confident 'generate' labels"),
            "labels.ret": (paper_numbers.DECISION_COUNTS["ret"], "confident 'retrieve' labels"),
            "labels.dropped": (paper_numbers.DECISION_COUNTS["dropped"], "prompts dropped by the 5-vote confidence rule"),
            "judges_ceiling_f1": (paper_numbers.ANNOTATOR_F1, "annotator agreement F1 (human ceiling)"),
        },
    },
}


# The README's short table: (stage, dotted key, what it is, the bar). The bar is ("min", x): at least x;
# ("within", other key, d): at most d below that figure of the same stage; ("times", other key, k): at least k
# times it; ("paper", x): the paper's figure, beside ours without a verdict; None: context for the row above.
# REPORT.md keeps every figure.
HEADLINES: list[tuple[str, str, str, tuple | None]] = [
    ("captioning", "caption_accuracy_heldout.all", "captioning: all 4 attributes right, held-out combinations",
     ("min", 0.90)),
    ("captioning", "linear_probe_heldout.all", "linear probe on the image encoder's pooled vector (its ceiling)", None),
    ("img_tokens", "img0_emission_share", "`[IMG0]` is the greedy next token after a corpus caption", ("min", 0.95)),
    ("generation", "probe_accuracy_gill.all", "generation through the mapper: all attributes right (probe)",
     ("within", "probe_accuracy_generator_from_caption.all", 0.10)),
    ("generation", "probe_accuracy_generator_from_caption.all", "the generator given the true caption (ceiling)", None),
    ("retrieval", "recall_test_pool.R@1", "text-to-image R@1, 1,000-image test pool", None),
    ("retrieval", "ceiling_test_pool.R@1", "R@1 ceiling (pixel twins in the pool)", None),
    ("retrieval", "recall_test_pool.R@10", "text-to-image R@10, 1,000-image test pool", None),
    ("decision", "classifier_macro_f1", "generate-or-retrieve classifier ([IMG0] + top retrieval score), macro F1",
     ("min", 0.80)),
    ("decision", "classifier_macro_f1_img0_only", "the same head on the `[IMG0]` state alone", None),
    ("decision", "judges_ceiling_f1", "judges' agreement F1 (human ceiling)", ("paper", paper_numbers.ANNOTATOR_F1)),
    ("vist", "clip_similarity.sd_last_caption", "VIST CLIP similarity: generator alone, last caption",
     ("paper", _CLIP["sd/last_caption"])),
    ("vist", "clip_similarity.sd_captions", "VIST CLIP similarity: generator alone, 5 captions",
     ("paper", _CLIP["sd/captions"])),
    ("vist", "clip_similarity.gill_last_caption", "VIST CLIP similarity: GILL, last caption",
     ("paper", _CLIP["gill/last_caption"])),
    ("vist", "clip_similarity.gill_captions", "VIST CLIP similarity: GILL, 5 captions",
     ("paper", _CLIP["gill/captions"])),
    ("vist", "clip_similarity.gill_captions_images", "VIST CLIP similarity: GILL, 5 captions + 4 images",
     ("paper", _CLIP["gill/captions_images"])),
    ("vist", "clip_similarity.sd_oracle", "VIST CLIP similarity: generator given the true last description", None),
    *[("vist", f"orderings.{metric}.{hi}>{lo}", f"VIST ordering ({label}): {title}, paired difference",
       ("ordering",)) for metric, label in (("clip_similarity", "CLIP similarity"), ("all_attributes", "probe, all 4"))
      for hi, lo, title in (("gill_captions", "gill_last_caption", "GILL 5 captions > GILL last caption"),
                            ("gill_captions_images", "gill_captions", "GILL 5 captions + 4 images > GILL 5 captions"),
                            ("gill_captions", "sd_captions", "GILL 5 captions > generator 5 captions"))],
    ("vist", "attribute_accuracy.gill_captions.kind", "VIST: kind of GILL's image, 5 captions", ("min", 0.90)),
    ("vist", "attribute_accuracy.sd_oracle.kind",
     "VIST: kind of the generator's image of the true last description (the row above's ceiling)", None),
    ("vist", "attribute_accuracy.gill_captions.all", "VIST: all 4 attributes of GILL's image, 5 captions (ceiling 0.50)",
     ("min", 0.25)),
    ("vist", "attribute_accuracy.gill_captions_images.all",
     "VIST: all 4 attributes of GILL's image, 5 captions + 4 images (ceiling 1.00)", ("min", 0.40)),
    ("vist", "retrieval.gill_captions_images_R1", "VIST retrieval R@1: GILL, 5 captions + 4 images",
     ("times", "retrieval.clip_text_captions_R1", 2.0)),
    ("vist", "retrieval.clip_text_captions_R1", "VIST retrieval R@1: text-only CLIP, 5 captions",
     ("paper", _R1["clip_text/captions"])),
    ("vist", "retrieval_equivalent.gill_captions_images_R1", "VIST retrieval R@1, same attributes counted: GILL",
     ("times", "retrieval_equivalent.clip_text_captions_R1", 2.0)),
    ("vist", "retrieval_equivalent.clip_text_captions_R1", "VIST retrieval R@1, same attributes counted: text-only CLIP",
     None),
    ("vist", "stories_per_second", "VIST evaluation throughput (stories/s)", None),
]
# The paper's headline claims, the README's first table: more context gives a closer image, GILL beats the
# generator alone, and contextual retrieval beats text-only CLIP (keys of HEADLINES)
CLAIMS = ("orderings.clip_similarity.gill_captions>gill_last_caption",
          "orderings.clip_similarity.gill_captions_images>gill_captions",
          "orderings.clip_similarity.gill_captions>sd_captions",
          "retrieval_equivalent.gill_captions_images_R1")
PIPELINE_TARGET_S = 15 * 60  # the tiny pipeline end to end on a 2-core CPU
README_FIGURES = ("generator_samples", "03_generated_vs_sd", "04_top_k", "06_vist_stories")  # REPORT.md: all


def _leaf(value):
    return value["value"] if isinstance(value, dict) and "value" in value else value


def _verdict(bar, value, flat: dict) -> tuple[str, str]:
    """(the bar as text, "met"/"missed"/"") for one headline figure."""
    if bar is None or not isinstance(value, (int, float)):
        return "", ""
    kind = bar[0]
    if kind == "ordering":  # value: the paired difference; the verdict comes from its 95% interval
        return "", ""
    if kind == "paper":
        return f"paper {format_value(bar[1])}", ""
    if kind == "min":
        return f">= {format_value(bar[1])}", "met" if value >= bar[1] else "**missed**"
    other = _leaf(flat.get(bar[1]))
    if not isinstance(other, (int, float)):
        return "", ""
    if kind == "within":
        return (f"within {format_value(bar[2])} of {format_value(other)}",
                "met" if value >= other - bar[2] - 1e-9 else "**missed**")
    if kind == "times":
        if other <= 0:  # k x 0 is no bar: any single hit would "meet" it
            return f">= {bar[2]:g} x {format_value(other)}", "not measurable (baseline 0)"
        return f">= {bar[2]:g} x {format_value(other)}", "met" if value >= bar[2] * other else "**missed**"
    raise ValueError(f"unknown bar {bar!r}")


def render_summary(results: dict, keys=None) -> str:
    """The README's results table: the `HEADLINES` figures this run recorded, each with its bar (a target or the
    paper's number) and whether it was met, plus the total notebook time against the 15-minute target.
    ``keys``: only those headlines (e.g. `CLAIMS`), in their order, and no total time."""
    stages = results.get("stages", {})
    lines = ["| figure | this run | target / paper | |", "|---|---|---|---|"]
    rows = HEADLINES if keys is None else [next(h for h in HEADLINES if h[1] == k) for k in keys]
    for stage, key, label, bar in rows:
        found = [v for k, v in stages.items() if k == stage or re.fullmatch(rf"\d+_{stage}", k)]
        if not found:
            continue
        figures = found[0]["figures"]
        flat = flatten(figures)
        if key not in flat:
            continue
        value = _leaf(flat[key])
        target, verdict = _verdict(bar, value, flat)
        if bar and bar[0] == "ordering" and isinstance(flat[key], dict):
            low, high = flat[key]["ci"]
            target = "paper: holds"
            verdict = "holds" if flat[key]["holds"] else ("**reversed**" if high < 0 else "**not shown**")
            value = f"{value:+.3f} [{low:+.3f}, {high:+.3f}]"
            lines.append(f"| {label} | {value} | {target} | {verdict} |")
            continue
        lines.append(f"| {label} | {format_value(value)} | {target} | {verdict} |")
    timings = results.get("timings", {})
    if keys is None and all(n in timings for n in NOTEBOOKS):  # a whole run, not a partial one
        total = sum(timings.values())
        verdict = "met" if total <= PIPELINE_TARGET_S else "**missed**"
        lines.append(f"| all notebooks, end to end | {format_seconds(total)} | <= 15 min on 2 CPUs | {verdict} |")
    if len(lines) == 2:
        return "No headline figure recorded yet (see the full report).\n"
    return "\n".join(lines) + "\n"


def _paper_entry(stage: str) -> dict | None:
    if stage in PAPER_NUMBERS:
        return PAPER_NUMBERS[stage]
    m = re.match(r"^\d+_(.+)$", stage)  # "06_vist" -> "vist"
    return PAPER_NUMBERS.get(m.group(1)) if m else None


def flatten(figures: dict, prefix: str = "") -> dict:
    """Nested dicts -> ``{"a.b": leaf}``; a dict with a ``"value"`` key is a leaf (one figure with extras)."""
    out = {}
    for key, value in figures.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and "value" not in value and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def format_value(value) -> str:
    """A short, table-safe rendering of one JSON value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}" if abs(value) >= 100 else f"{value:.3f}"
    if isinstance(value, list):
        if len(value) <= 4 and all(isinstance(v, (int, float, str)) or v is None for v in value):
            return "[" + ", ".join(format_value(v) for v in value) + "]"
        return f"list of {len(value)}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) or "{}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def format_seconds(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _stage_table(stage: str, figures: dict) -> list[str]:
    paper = _paper_entry(stage) or {"figures": {}}
    flat = flatten(figures)
    rows = []  # (key, label, ours, paper, notes)
    for key, value in flat.items():
        ref = paper["figures"].get(key)
        label = ref[1] if ref else ""
        paper_value = ref[0] if ref else None
        notes = ""
        if isinstance(value, dict):  # {"value": ..., "paper": ..., anything else -> notes}
            extras = {k: v for k, v in value.items() if k not in ("value", "paper", "label")}
            paper_value = value.get("paper", paper_value)
            label = value.get("label", label)
            notes = format_value(extras) if extras else ""
            value = value["value"]
        rows.append((key, label, format_value(value), "" if paper_value is None else format_value(paper_value), notes))
    for key, (paper_value, label) in paper["figures"].items():
        if key not in flat:  # the paper has it, this run did not measure it (yet)
            rows.append((key, label, "not measured", format_value(paper_value), ""))
    has_paper = any(r[3] for r in rows)
    has_notes = any(r[4] for r in rows)
    header = ["figure", "this run"] + (["paper"] if has_paper else []) + (["notes"] if has_notes else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label, ours, paper_value, notes in rows:
        name = f"`{key}`" + (f" ({label})" if label else "")
        cells = [name, ours] + ([paper_value] if has_paper else []) + ([notes] if has_notes else [])
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ordered_notebooks(timings: dict) -> list[str]:
    known = [n for n in NOTEBOOKS if n in timings]
    return known + sorted(n for n in timings if n not in NOTEBOOKS)


def _image_path(stored: str) -> Path:
    """A recorded figure's file. `figures.save_figure` stores paths inside the writing clone relative to it
    (``runs/tiny/figures/x.png``); ``runs/...`` is read under `config.runs_root()`, so a run folder read from
    another clone (``GILL_RUNS_DIR=/other/clone/runs``) finds its own figures, not this clone's."""
    path = Path(stored)
    if path.is_absolute():
        return path
    if path.parts[:1] == ("runs",):
        return runs_root().joinpath(*path.parts[1:])
    return REPO_ROOT / path


def render_report(results: dict, base_dir: Path, heading: int = 2, machine: bool = True) -> str:
    """Markdown for ``results`` with image links relative to ``base_dir`` (where the markdown file lives)."""
    h = "#" * heading
    lines: list[str] = []
    timings = results.get("timings", {})
    if machine:
        m = results["machine"]
        total = sum(timings.values())
        lines += [f"{h} Run", "", "| | |", "|---|---|",
                  f"| profile | `{results['profile']}` |",
                  f"| machine | {m.get('platform')} |",
                  f"| CPUs | {m.get('cpu_count')} |",
                  f"| GPU | {m.get('gpu') or 'none'} |",
                  f"| torch | {m.get('torch') or 'not installed'} |",
                  f"| Python | {m.get('python', '?')} |",
                  f"| total notebook time | {format_seconds(total) if timings else 'no notebook timed yet'} |", ""]
        if timings:
            lines += [f"{h}# Time per notebook", "", "| notebook | wall time |", "|---|---|"]
            lines += [f"| {n} | {format_seconds(timings[n])} |" for n in _ordered_notebooks(timings)]
            lines += [f"| **total** | **{format_seconds(total)}** |", ""]
    stages = results.get("stages", {})
    if not stages:
        lines += [f"{h} Results", "", "No stage has recorded figures yet.", ""]
    for stage, entry in stages.items():
        paper = _paper_entry(stage)
        lines += [f"{h} {stage}", ""]
        if paper:
            lines += [f"{paper['title']}; the `paper` column is Koh et al. 2023.", ""]
        lines += _stage_table(stage, entry["figures"]) + ["", f"_updated {entry['updated']}_", ""]
    missing = [s for s in PAPER_NUMBERS if not any(_paper_entry(k) is PAPER_NUMBERS[s] for k in stages)]
    if missing and machine:
        lines += [f"{h} Paper figures this run has not measured yet", ""]
        for stage in missing:
            lines += [f"- **{stage}** ({PAPER_NUMBERS[stage]['title']}): " + "; ".join(
                f"{label} {format_value(v)}" for v, label in PAPER_NUMBERS[stage]["figures"].values())]
        lines.append("")
    images = results.get("images", {})
    if images:
        lines += [f"{h} Figures", ""]
        for name, image in images.items():
            path = _image_path(image["path"])
            rel = Path(os.path.relpath(path, base_dir)).as_posix()
            where = f" ({image['stage']})" if image.get("stage") else ""
            if path.exists():
                lines += [f"**{name}**{where}", "", f"![{name}]({rel})", ""]
            else:
                lines += [f"**{name}**{where}: file missing ({rel})", ""]
    return "\n".join(lines).rstrip() + "\n"


def update_readme_results(readme_path, markdown: str) -> None:
    """Replace the text between ``<!-- results:start -->`` and ``<!-- results:end -->`` in ``readme_path``."""
    readme_path = Path(readme_path)
    text = readme_path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < 0 or end < start or text.count(README_START) != 1 or text.count(README_END) != 1:
        raise ValueError(
            f"{readme_path} needs exactly one '{README_START}' followed by one '{README_END}' line "
            "around its results section; add them where the results should go"
        )
    new = text[: start + len(README_START)] + "\n" + markdown.strip("\n") + "\n" + text[end:]
    atomic_write_text(readme_path, new)


def write_report(profile, update_readme: bool = False, readme_path=None) -> Path:
    """Write ``runs/<profile>/REPORT.md`` from results.json (what every run does: nothing tracked changes);
    with ``update_readme`` also the README's results section, linking the run's own figures (`publish_results`
    links the committed copies instead). Returns the report's path.
    """
    if isinstance(profile, str):
        from gill_lite.config import get_profile

        profile = get_profile(profile)
    results = load_results(profile, missing_ok=False)
    report = Path(profile.run_dir) / "REPORT.md"
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    head = (f"# gill-lite report: profile `{profile.name}`\n\n"
            f"Made from `{results_path(profile).name}` by `gill-lite report --profile {profile.name}` "
            f"({stamp}). Results file created {results['created']}.\n\n")
    atomic_write_text(report, head + render_report(results, report.parent))
    if update_readme:
        _update_readme(profile, results, Path(readme_path) if readme_path else REPO_ROOT / "README.md")
    return report


def publish_results(profile, readme_path=None) -> list[Path]:
    """The maintainer's explicit refresh (``make readme``): copy the README's figures of the finished run from
    ``runs/<profile>/figures`` into the committed ``figures/`` beside the README and rewrite the README's results
    section (linking those copies). Returns the copied files."""
    import shutil

    if isinstance(profile, str):
        from gill_lite.config import get_profile

        profile = get_profile(profile)
    readme_path = Path(readme_path) if readme_path else REPO_ROOT / "README.md"
    results = load_results(profile, missing_ok=False)
    copied = {}
    for name in README_FIGURES:
        image = results.get("images", {}).get(name)
        if image and _image_path(image["path"]).exists():
            target = readme_path.parent / "figures" / f"{name}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_image_path(image["path"]), target)
            copied[name] = target
    _update_readme(profile, results, readme_path, copied)
    return list(copied.values())


def _update_readme(profile, results: dict, readme_path: Path, figures: dict | None = None) -> None:
    total = sum(results["timings"].values())
    m = results["machine"]
    if figures is None:
        figures = {name: _image_path(image["path"]) for name, image in results.get("images", {}).items()}
    body = (f"_Profile `{profile.name}`, {format_seconds(total)} of notebooks on {m.get('cpu_count')} CPUs "
            f"({m.get('platform')}, torch {m.get('torch')}). Every figure, with intervals, per notebook "
            f"times and all plots: `runs/{profile.name}/REPORT.md` after `make demo`._\n\n"
            "**The paper's claims** (VIST: more context gives a closer image; contextual retrieval beats text-only "
            "CLIP):\n\n" + render_summary(results, CLAIMS) + "\n**Every headline figure**\n\n"
            + render_summary(results) + "\n" + _readme_figures(figures, readme_path.parent))
    update_readme_results(readme_path, body)


def _readme_figures(figures: dict, base_dir: Path) -> str:
    """Links to the few figures the README shows (the report shows them all): ``figures`` maps name -> file."""
    lines = []
    for name in README_FIGURES:
        path = figures.get(name)
        if path is not None and Path(path).exists():
            rel = Path(os.path.relpath(path, base_dir)).as_posix()
            lines += [f"**{name}**", "", f"![{name}]({rel})", ""]
    return "\n".join(lines)
