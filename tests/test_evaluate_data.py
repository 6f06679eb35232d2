"""Evaluation inputs from files: SIS stories (missing/broken images reported), VisDial, world exports, CLI."""
import json
import shutil
from pathlib import Path

import pytest

from gill_lite.evaluate.stories import sis_stories
from gill_lite.evaluate.visdial import load_visdial, world_dialogue_known

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"


def test_load_visdial_fixture():
    dialogs = load_visdial(FIXTURES / "visdial_fixture.json")
    assert [d.image_id for d in dialogs] == [185565, 284024]
    assert dialogs[0].rounds[1] == ("what color is the bus", "red and white")
    assert dialogs[0].text.splitlines()[:2] == ["Q: is the photo in color?", "A: yes"]
    assert dialogs[1].image_path("imgs").name == "VisualDialog_val2018_000000284024.jpg"


def test_load_visdial_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_visdial(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"data": {"questions": []}}))
    with pytest.raises(ValueError, match="VisDial"):
        load_visdial(tmp_path / "bad.json")
    doc = json.loads((FIXTURES / "visdial_fixture.json").read_text())
    doc["data"]["dialogs"][1]["dialog"][0]["question"] = 99
    (tmp_path / "idx.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="dialog #1"):
        load_visdial(tmp_path / "idx.json")


def test_world_dialogue_known_reads_only_what_answers_state():
    from gill_lite.world.attributes import Scene, Shape
    from gill_lite.world.dialogue import Dialogue

    scene = Scene((Shape("circle", "red", "small", "top left"),))
    d = Dialogue("d", scene, "", [("is the circle blue?", "no, it is red."), ("how big is the circle?", "it is small.")])
    assert world_dialogue_known(d) == ["kind", "colour", "size"]


def _copy_fixture(tmp_path):
    dst = tmp_path / "vist"
    shutil.copytree(FIXTURES / "vist", dst)
    return dst / "sis.json", dst / "images"


def test_sis_fixture_loads_with_probed_shapes(tmp_path):
    json_path, images = _copy_fixture(tmp_path)
    stories, skipped = sis_stories(json_path, images, 32, probe=True)
    assert skipped == [] and len(stories) == 2
    from gill_lite.world.stories import make_stories
    from gill_lite.world.text import word_tokens

    truth = make_stories(2, seed=0)
    for s, t in zip(stories, truth):
        assert s.images.shape == (5, 32, 32, 3)
        assert s.shape == t.final  # the probe reads renders exactly
        assert s.captions[-1] == " ".join(word_tokens(t.captions[-1]))  # SIS "text": lowercased, tokenised


def test_missing_and_broken_images_are_reported_not_replaced(tmp_path):
    json_path, images = _copy_fixture(tmp_path)
    photos = sorted(images.iterdir())
    photos[1].unlink()  # story 0 loses an image
    photos[7].write_bytes(b"not a png")  # story 1 gets a broken one
    stories, skipped = sis_stories(json_path, images, 32)
    assert stories == []
    reasons = " | ".join(s["reason"] for s in skipped)
    assert len(skipped) == 2
    assert photos[1].stem in reasons and "not found" in reasons
    assert photos[7].name in reasons


def test_cli_reports_skipped_stories_in_results_json(tmp_path, monkeypatch):
    monkeypatch.setenv("GILL_RUNS_DIR", str(tmp_path / "runs"))
    from gill_lite.cli import main

    json_path, images = _copy_fixture(tmp_path)
    next(images.iterdir()).unlink()
    out = tmp_path / "out"
    rc = main(["eval", "vist", "--annotations", str(json_path), "--images", str(images), "--profile", "ci",
               "--out", str(out)])
    result = json.loads((out / "results.json").read_text())
    assert rc == 1 and result["counts"] == {"stories": 1, "skipped": 1}
    assert "not found" in result["skipped"][0]["reason"]


def test_cli_runs_the_protocols_with_a_model(tmp_path, monkeypatch):
    """The full CLI path on a ShapeStories export, with a fake model standing in for GILL."""
    monkeypatch.setenv("GILL_RUNS_DIR", str(tmp_path / "runs"))
    from gill_lite.cli import main
    from gill_lite.data.formats import export_vist
    from gill_lite.inference import GillPipeline
    from gill_lite.world.stories import make_stories

    from evaluate_fakes import FakePipeline, Flatten

    stories = make_stories(6, seed=0)
    json_path = export_vist(stories, tmp_path / "export", image_size=32)

    class Parts:
        eval_clip = image_encoder = Flatten(32 * 32 * 3)

    def fake_for_profile(profile, checkpoint=None):
        from gill_lite.evaluate.stories import sis_stories

        loaded, _ = sis_stories(json_path, json_path.parent / "images", 32)
        return FakePipeline(loaded, Parts())

    monkeypatch.setattr(GillPipeline, "for_profile", staticmethod(fake_for_profile))
    out = tmp_path / "out"
    rc = main(["eval", "vist", "--annotations", str(json_path), "--images", str(json_path.parent / "images"),
               "--profile", "ci", "--out", str(out)])
    assert rc == 0
    r = json.loads((out / "results.json").read_text())
    assert r["counts"]["stories"] == 6 and r["skipped"] == []
    gen = r["generation"]["settings"]
    assert gen["gill/captions_images"]["clip_similarity"]["mean"] == pytest.approx(1.0)
    assert "attributes" in gen["gill/captions_images"]  # probe on by default for ShapeStories profiles
    assert gen["gill/captions_images"]["attributes"]["all"]["mean"] == 1.0
    assert r["retrieval"]["settings"]["gill/captions_images"]["R@1"]["mean"] == 1.0
    assert r["retrieval"]["pool_size"] == 30


def test_evaluation_never_reads_what_training_reads():
    """VIST stories come from the "eval" stream; dialogues from indices past those the LM stand-in read."""
    from gill_lite.config import get_profile
    from gill_lite.evaluate.dialogue import world_dialogue_items
    from gill_lite.evaluate.stories import world_stories
    from gill_lite.world.dialogue import make_dialogues

    profile = get_profile("ci")
    stories = world_stories(profile, 5)
    assert all(s.id.startswith("eval-") for s in stories)
    items = world_dialogue_items(profile, 5)
    assert all(int(i.id.split("-")[1]) >= profile.world.n_dialogues for i in items)
    lm_read = {d.id for d in make_dialogues(profile.world.n_dialogues, profile.world.seed, profile.world.image_size)}
    assert not lm_read & {i.id for i in items}
    assert all(i.text.startswith("Q: ") for i in items)  # Q/A rounds only, as GILL's VisDial evaluation
