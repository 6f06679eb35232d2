"""The judging panel, driven programmatically (what its buttons call) and headless."""
import json

import numpy as np
import pytest

from gill_lite.widgets import (JudgingItem, JudgingPanel, append_vote, choice_to_vote, load_votes, merge_votes,
                               shown_order)


def _items(n=4):
    return [JudgingItem(f"prompt-{i}", f"a red circle number {i}", np.zeros((8, 8, 3), np.uint8),
                        np.full((8, 8, 3), 200, np.uint8)) for i in range(n)]


def test_buttons_map_back_to_gen_ret_same():
    assert choice_to_vote("first", ("gen", "ret")) == "gen"
    assert choice_to_vote("second", ("gen", "ret")) == "ret"
    assert choice_to_vote("first", ("ret", "gen")) == "ret"
    assert choice_to_vote("same", ("ret", "gen")) == "same"
    with pytest.raises(ValueError):
        choice_to_vote("left", ("gen", "ret"))


def test_order_is_seeded_and_mixed():
    orders = [shown_order(f"prompt-{i}", seed=0) for i in range(200)]
    assert orders == [shown_order(f"prompt-{i}", seed=0) for i in range(200)]
    assert 60 < sum(o[0] == "gen" for o in orders) < 140


def test_each_click_is_saved_at_once_and_the_panel_resumes(tmp_path):
    path = tmp_path / "votes.jsonl"
    items = _items()
    panel = JudgingPanel(items, path, seed=0)
    assert panel.current.id == "prompt-0"
    assert panel.widget is not None  # built without any display
    panel.buttons["first"].click()  # the real button handler
    expected0 = shown_order("prompt-0", 0)[0]
    assert load_votes(path) == {"prompt-0": expected0}  # on disk before the next click
    panel.vote("same")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in records] == ["prompt-0", "prompt-1"] and records[1]["vote"] == "same"
    assert records[0]["first"] == expected0 and records[0]["choice"] == "first"

    # a new panel (the kernel restarted) starts at the first unjudged item
    again = JudgingPanel(items, path, seed=0)
    assert again.current.id == "prompt-2" and again.remaining == 2
    vote = again.vote("second")
    assert vote == shown_order("prompt-2", 0)[1]
    again.vote("first")
    assert again.current is None and again.vote("first") is None
    assert all(b.disabled for b in again.buttons.values())
    assert len(load_votes(path)) == 4


def test_torn_last_line_loses_nothing_finished(tmp_path):
    path = tmp_path / "votes.jsonl"
    append_vote(path, {"id": "a", "vote": "gen"})
    with open(path, "a") as f:
        f.write('{"id": "b", "vo')  # died mid-write
    append_vote(path, {"id": "c", "vote": "ret"})
    assert load_votes(path) == {"a": "gen", "c": "ret"}


def test_simulated_votes_are_used_unless_someone_clicked():
    simulated = [["gen"] * 5, ["ret"] * 5]
    assert merge_votes(simulated, ["x", "y"], {}) == simulated
    assert merge_votes(simulated, ["x", "y"], {"y": "same"}) == [["gen"] * 5, ["same"] + ["ret"] * 4]


def test_images_from_files_are_shown(tmp_path):
    from PIL import Image

    for kind in ("gen", "ret"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f"{kind}.png")
    panel = JudgingPanel([JudgingItem("p", "a prompt", tmp_path / "gen.png", tmp_path / "ret.png")],
                         tmp_path / "v.jsonl", image_px=64)
    png = panel._images[0].value
    assert png[:4] == b"\x89PNG" and Image.open(__import__("io").BytesIO(png)).size == (64, 64)


def test_undo_takes_the_last_vote_back_and_keeps_the_others(tmp_path):
    from gill_lite.widgets import remove_last_vote

    path = tmp_path / "votes.jsonl"
    items = _items(3)
    panel = JudgingPanel(items, path, seed=0)
    assert panel.undo_button.disabled  # nothing to undo yet
    panel.vote("first")
    panel.vote("same")
    assert panel.current.id == "prompt-2" and not panel.undo_button.disabled
    panel.undo_button.click()  # the real button handler
    assert panel.current.id == "prompt-1" and load_votes(path) == {"prompt-0": shown_order("prompt-0", 0)[0]}
    assert len(path.read_text().splitlines()) == 1
    panel.vote("second")
    panel.vote("first")
    assert panel.current is None and all(b.disabled for b in panel.buttons.values())
    panel.undo()  # after the last prompt: it comes back, and the buttons work again
    assert panel.current.id == "prompt-2" and not panel.buttons["first"].disabled
    assert list(load_votes(path)) == ["prompt-0", "prompt-1"]
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was swapped in
    panel.undo(), panel.undo()
    assert panel.undo() is None and load_votes(path) == {} and "nothing to undo" in panel._status.value

    # another judge's votes, other prompts' votes and a torn line are kept
    append_vote(path, {"id": "prompt-0", "vote": "gen", "judge": "human"})
    append_vote(path, {"id": "elsewhere", "vote": "ret", "judge": "human"})
    append_vote(path, {"id": "prompt-1", "vote": "ret", "judge": "someone else"})
    with open(path, "a") as f:
        f.write('{"id": "prompt-2", "vo')
    assert remove_last_vote(path, [it.id for it in items], "human")["id"] == "prompt-0"
    assert load_votes(path) == {"elsewhere": "ret", "prompt-1": "ret"}
    assert path.read_text().splitlines()[-1] == '{"id": "prompt-2", "vo'
    assert remove_last_vote(tmp_path / "missing.jsonl") is None


def test_a_failing_handler_shows_its_error_and_the_panel_goes_on(tmp_path, monkeypatch):
    import gill_lite.widgets as widgets

    panel = JudgingPanel(_items(2), tmp_path / "votes.jsonl", seed=0)

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(widgets, "append_vote", full_disk)
    panel.buttons["first"].click()
    assert "No space left on device" in panel._status.value and panel.current.id == "prompt-0"
    monkeypatch.undo()
    panel.buttons["first"].click()
    assert panel.current.id == "prompt-1"
