"""The real formats: committed fixtures load, round trips are exact, bad input names file and line."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gill_lite.data import (
    DataFormatError, confidence_label, export_cc3m, export_decisions, export_vist, load_cc3m, load_decisions,
    load_vist, parse_shape_note,
)
from gill_lite.world.corpus import make_split
from gill_lite.world.prompts import make_decision_prompts
from gill_lite.world.stories import make_stories

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"


# ---------------------------------------------------------------------------------- confidence rule
@pytest.mark.parametrize("votes, label", [
    ("gen gen gen gen gen", "gen"),
    ("gen gen gen gen ret", "gen"),      # 4 agree
    ("ret ret ret ret same", "ret"),
    ("gen gen gen ret same", "gen"),     # 3 agree, opposite has 1
    ("gen gen gen same same", "gen"),    # 3 agree, opposite has 0 ("same" is not opposite)
    ("ret ret ret gen same", "ret"),
    ("ret ret ret same same", "ret"),
    ("gen gen gen ret ret", None),       # 3 vs 2: opposite has 2
    ("ret ret ret gen gen", None),
    ("gen gen ret ret same", None),      # 2-2 tie
    ("gen gen same same same", None),    # only 2 agree
    ("ret ret same same gen", None),
    ("same same same same same", None),
    ("same same same same gen", None),
    ("gen ret same same same", None),
])
def test_confidence_rule(votes, label):
    assert confidence_label(votes.split()) == label


def test_confidence_rule_rejects_bad_votes():
    with pytest.raises(ValueError, match="maybe"):
        confidence_label(["gen", "gen", "maybe", "ret", "gen"])
    with pytest.raises(ValueError, match="at least one vote"):
        confidence_label([])


@pytest.mark.parametrize("votes,label", [
    # the published rule (scripts/process_p2_annotations.py) on vote counts, whatever their number
    ("ret same ret gen", None),          # a released 4-vote row: ret 2
    ("ret ret ret gen", "ret"),          # 3 against 1
    ("gen gen gen", "gen"),              # 3 against 0
    ("gen gen gen gen", "gen"),          # 4
    ("gen gen", None),                   # 2 are never enough
    ("ret", None),
    ("gen gen gen ret ret", None),
    ("gen gen gen gen ret ret ret ret", "gen"),  # 4 and 4: most_common keeps the first counted, as published
])
def test_confidence_rule_any_number_of_votes(votes, label):
    assert confidence_label(votes.split()) == label


def test_published_decision_layouts_give_the_published_counts():
    """Both released layouts of GILL's PartiPrompts decisions (rows copied verbatim, data/fixtures/decisions/README.md)."""
    rows = load_decisions(FIXTURES / "decisions" / "PartiPromptsAllDecisions_Alignment.tsv")
    assert rows.counts == {"layout": "votes", "rows": 10, "gen": 2, "ret": 4, "dropped": 4, "unjudged": 0,
                           "fewer_than_5_votes": 1, "votes_per_row": {4: 1, 5: 9}}
    assert rows[6].prompt == "Salvador Dalí" and rows[6].label == "ret"
    assert '"Fly an airplane"' in rows[8].prompt and rows[8].label == "ret"  # quotes kept as released
    assert rows[9].decisions == ["ret", "same", "ret", "gen"] and rows[9].label is None
    confident = load_decisions(FIXTURES / "decisions" / "PartiPromptsDecisionsConfident.tsv")
    assert confident.counts == {"layout": "confident", "rows": 9, "gen": 2, "ret": 4, "dropped": 3, "unjudged": 0}
    # the published script's labels are the rule's labels on the same prompts
    by_prompt = {r.prompt: r.label for r in rows}
    assert all(by_prompt[r.prompt] == r.label for r in confident)
    assert all(r.decisions == [] and r.decision in ("gen", "ret", "same") for r in confident)


def test_confident_layout_refuses_bad_labels(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("Prompt\tCategory\tChallenge\tNote\tDecision\nbond\tAbstract\tBasic\t\tmaybe\n")
    with pytest.raises(DataFormatError, match="line 2: bad Decision 'maybe'"):
        load_decisions(path)
    assert load_decisions(path, skip_bad=True).counts["rows"] == 0
    path.write_text("Prompt\tCategory\tDecision\nbond\tAbstract\tgen\n")
    with pytest.raises(DataFormatError, match="line 1: expected the header"):
        load_decisions(path)


# ---------------------------------------------------------------------------------- fixtures
def test_fixtures_load():
    rows, skipped = load_cc3m(FIXTURES / "cc3m" / "cc3m.tsv")
    assert len(rows) == 8 and not skipped
    assert rows[0].image.shape == (32, 32, 3) and rows[0].image.dtype == np.uint8
    stories = load_vist(FIXTURES / "vist" / "sis.json", FIXTURES / "vist" / "images")
    assert len(stories) == 2 and all(len(s.photo_ids) == 5 for s in stories)
    assert stories[0].images().shape == (5, 32, 32, 3)
    rows = load_decisions(FIXTURES / "decisions" / "decisions.tsv")
    assert len(rows) == 10 and all(len(r.decisions) == 5 for r in rows)
    assert [r.label for r in rows] == ["gen", "ret", "gen", "ret", None, None, None, None, "gen", "ret"]
    assert parse_shape_note(rows[0].note).kind in rows[0].prompt


def test_bad_cc3m_names_file_and_line(tmp_path):
    bad = FIXTURES / "cc3m" / "cc3m_bad.tsv"
    with pytest.raises(DataFormatError, match=r"cc3m_bad\.tsv: line 4: expected 2"):
        load_cc3m(bad)
    rows, skipped = load_cc3m(bad, skip_bad=True)
    assert len(rows) == 2
    assert [s.where for s in skipped] == ["line 4", "line 5", "line 6"]
    assert "empty caption" in skipped[1].reason and "not found" in skipped[2].reason
    # a broken image file
    shutil.copytree(FIXTURES / "cc3m", tmp_path / "cc3m")
    (tmp_path / "cc3m" / "images" / "train-000001.png").write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match=r"cc3m\.tsv: line 3: .*cannot read image"):
        load_cc3m(tmp_path / "cc3m" / "cc3m.tsv")
    with pytest.raises(DataFormatError, match="header"):
        (tmp_path / "h.tsv").write_text("text\turl\n")
        load_cc3m(tmp_path / "h.tsv")


def test_bad_decisions_name_file_and_line():
    bad = FIXTURES / "decisions" / "decisions_bad.tsv"
    with pytest.raises(DataFormatError, match=r"decisions_bad\.tsv: line 4: bad Decisions"):
        load_decisions(bad)
    rows = load_decisions(bad, skip_bad=True)
    assert len(rows) == 4 and [s.where for s in rows.skipped] == ["line 4", "line 5"]
    assert "columns" in rows.skipped[1].reason


def test_bad_vist_names_file_and_story(tmp_path):
    doc = json.loads((FIXTURES / "vist" / "sis.json").read_text())
    del doc["annotations"][7][0]["text"]  # story 1
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"bad\.json: story 1: storylet misses \['text'\]"):
        load_vist(path)
    stories = load_vist(path, skip_bad=True)
    assert [s.story_id for s in stories] == ["0"] and len(stories.skipped) == 1
    with pytest.raises(DataFormatError, match=r"sis\.json: story 0: images not found"):
        load_vist(FIXTURES / "vist" / "sis.json", images_dir=tmp_path)
    (tmp_path / "broken.json").write_text("{\n  'x': 1")
    with pytest.raises(DataFormatError, match=r"broken\.json: line 2"):
        load_vist(tmp_path / "broken.json")


# ---------------------------------------------------------------------------------- round trips
def test_cc3m_round_trip_and_determinism(tmp_path):
    examples = make_split("val", 12, seed=5)
    a = export_cc3m(examples, tmp_path / "a", 32)
    b = export_cc3m(examples, tmp_path / "b", 32)
    assert a.read_bytes() == b.read_bytes()
    assert all((tmp_path / "a/images" / p.name).read_bytes() == p.read_bytes() for p in (tmp_path / "b/images").iterdir())
    rows, _ = load_cc3m(a)
    assert [r.caption for r in rows] == [e.caption for e in examples]
    assert all(np.array_equal(r.image, e.image(32)) for r, e in zip(rows, examples))


def test_vist_round_trip(tmp_path):
    stories = make_stories(3, seed=2)
    path = export_vist(stories, tmp_path, 32)
    doc = json.loads(path.read_text())
    assert set(doc) >= {"images", "annotations"}
    assert all(isinstance(a, list) and len(a) == 1 for a in doc["annotations"])
    # shuffle the storylets: the loader must regroup and reorder them
    doc["annotations"] = doc["annotations"][::-1]
    path.write_text(json.dumps(doc))
    loaded = load_vist(path, tmp_path / "images")
    assert sorted(s.story_id for s in loaded) == ["0", "1", "2"]
    for s in loaded:
        story = stories[int(s.story_id)]
        assert s.original_texts == story.captions
        assert s.texts[0] == story.captions[0].lower().replace(".", " .").replace(",", " ,")
        assert np.array_equal(s.images(), story.images(32))


def test_decisions_round_trip(tmp_path):
    prompts = make_decision_prompts(6, seed=0)
    votes = [["gen"] * 5, ["ret"] * 4 + ["same"], ["gen", "ret", "same", "gen", "ret"]] * 2
    rows = load_decisions(export_decisions(prompts, tmp_path / "d.tsv", votes))
    assert [r.prompt for r in rows] == [p.text for p in prompts]
    assert [r.decisions for r in rows] == votes
    assert [parse_shape_note(r.note) for r in rows] == [p.shape for p in prompts]
    assert [r.category for r in rows] == [p.category for p in prompts]
    unjudged = load_decisions(export_decisions(prompts, tmp_path / "p.tsv"))
    assert all(r.decisions == [] and r.label is None for r in unjudged)
