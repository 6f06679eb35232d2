"""`gill-lite world` writes every export, byte-identically for the same seed."""
import json

from gill_lite.cli import main
from gill_lite.data import load_cc3m, load_decisions, load_vist


def test_world_cli_writes_all_exports(tmp_path, capsys):
    assert main(["world", "--profile", "ci", "--out", str(tmp_path / "a")]) == 0
    out = tmp_path / "a"
    summary = json.loads((out / "world.json").read_text())
    assert summary["sizes"]["corpus/train"] == 400 and summary["sizes"]["stories/eval"] == 40
    assert summary["information_ceiling"]["captions_images"]["all"] == 1.0
    rows, skipped = load_cc3m(out / "cc3m" / "train.tsv", load_images=False)
    assert len(rows) == 400 and not skipped
    assert len(load_vist(out / "vist" / "sis.json", out / "vist" / "images")) == 40
    prompts = load_decisions(out / "decisions" / "prompts.tsv")
    assert len(prompts) == 160 and all(r.decisions == [] for r in prompts)
    assert len((out / "dialogues.jsonl").read_text().splitlines()) == 100
    assert "ceiling captions" in capsys.readouterr().out
    # same seed -> byte-identical exports
    main(["world", "--profile", "ci", "--out", str(tmp_path / "b")])
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files and all((out / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
