"""Collecting the decision set: resumable, atomic, identical after an interruption."""
import json
import zlib

import numpy as np
import pytest
import torch

from gill_lite.decision.collect import Collection, collect_decisions, read_manifest
from gill_lite.world.prompts import make_decision_prompts


class FakePipeline:
    """Deterministic stand-in for a GillPipeline: states from the text, images from the seed, index ids from the
    states; can fail on purpose."""

    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = 0, fail_after

    def img_states_batch(self, texts):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated Ctrl-C")
        self.calls += 1
        return torch.stack([torch.randn(8, 16, generator=torch.Generator().manual_seed(zlib.crc32(t.encode())))
                            for t in texts])

    def generate(self, states, seed):
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, (len(states), 8, 8, 3), dtype=np.uint8)

    def retrieve(self, states, k=1):
        return [[(f"train-{int(s[0].argmax()):06d}", float(s[0].max()) / 10)] for s in states]

    def decision_inputs(self, states, top_cosines):
        from gill_lite.model.decision import decision_features

        return decision_features(states[:, 0], torch.tensor(top_cosines) * 20.0)

    def index_images(self, ids):
        return np.stack([np.full((8, 8, 3), int(i.split("-")[1]) * 10, np.uint8) for i in ids])


def _snapshot(col: Collection):
    return col.records, col.features(), col.images("gen"), col.images("ret")


def test_collection_writes_everything_per_prompt(tmp_path):
    prompts = make_decision_prompts(10, seed=0)
    col = collect_decisions(prompts, tmp_path, FakePipeline(), batch_size=4, progress=False)
    assert col.ids == [p.id for p in prompts] and len(col) == 10
    assert col.features().shape == (10, 17) and col.img0_states().shape == (10, 16)
    assert col.images("gen").shape == (10, 8, 8, 3)
    assert {r["category"] for r in col.records} <= {"corpus", "novel"}
    assert col.shapes()[3] == prompts[3].shape
    assert col.records[0]["retrieved_id"].startswith("train-")
    # the [IMG0] state is kept, and what the decision head reads: that state and the top retrieval score
    img0 = FakePipeline().img_states_batch([prompts[5].text])[0, 0]
    assert torch.equal(col.img0_states()[5], img0) and torch.equal(col.features()[5, :16], img0)
    assert col.records[5]["retrieved_score"] == pytest.approx(float(img0.max()) / 10)
    assert col.features()[5, 16].item() == pytest.approx(20.0 * col.records[5]["retrieved_score"])
    assert len((tmp_path / "manifest.jsonl").read_text().splitlines()) == 10


def test_interrupted_collection_resumes_to_the_same_result(tmp_path):
    prompts = make_decision_prompts(11, seed=0)
    whole = collect_decisions(prompts, tmp_path / "whole", FakePipeline(), batch_size=3, progress=False)

    with pytest.raises(KeyboardInterrupt):
        collect_decisions(prompts, tmp_path / "split", FakePipeline(fail_after=2), batch_size=3, progress=False)
    assert len(read_manifest(tmp_path / "split")) == 6  # two whole batches finished
    resumed_collector = FakePipeline()
    resumed = collect_decisions(prompts, tmp_path / "split", resumed_collector, batch_size=3, progress=False)
    assert resumed_collector.calls == 2  # only the two missing batches ran
    a, b = _snapshot(whole), _snapshot(resumed)
    assert [{**r} for r in a[0]] == [{**r} for r in b[0]]
    assert torch.equal(a[1], b[1]) and np.array_equal(a[2], b[2]) and np.array_equal(a[3], b[3])
    for r in whole.records:  # byte-identical images
        assert (tmp_path / "whole" / r["gen"]).read_bytes() == (tmp_path / "split" / r["gen"]).read_bytes()

    # a finished collection does no work at all
    idle = FakePipeline()
    collect_decisions(prompts, tmp_path / "split", idle, batch_size=3, progress=False)
    assert idle.calls == 0


def test_a_torn_manifest_line_is_repaired(tmp_path):
    prompts = make_decision_prompts(6, seed=0)
    collect_decisions(prompts[:3], tmp_path, FakePipeline(), batch_size=3, progress=False)
    with open(tmp_path / "manifest.jsonl", "a") as f:
        f.write('{"id": "prompt-0000')  # the kernel died mid-append
    col = collect_decisions(prompts, tmp_path, FakePipeline(), batch_size=3, progress=False)
    assert col.ids == [p.id for p in prompts]
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [p.id for p in prompts]


def test_other_settings_start_over(tmp_path, capsys):
    prompts = make_decision_prompts(4, seed=0)
    collect_decisions(prompts, tmp_path, FakePipeline(), batch_size=2, fingerprint="model-a", progress=False)
    again = FakePipeline()
    collect_decisions(prompts, tmp_path, again, batch_size=2, fingerprint="model-b", progress=False)
    assert again.calls == 2 and "starting over" in capsys.readouterr().out
    aside = tmp_path.with_name(f"{tmp_path.name}.superseded-1")  # the finished collection is kept, not deleted
    assert json.loads((aside / "meta.json").read_text())["fingerprint"] == "model-a"
    assert len((aside / "manifest.jsonl").read_text().splitlines()) == 4
    assert json.loads((tmp_path / "meta.json").read_text())["fingerprint"] == "model-b"


def test_bad_input_is_refused(tmp_path):
    prompts = make_decision_prompts(2, seed=0)
    with pytest.raises(ValueError):
        collect_decisions(prompts + prompts[:1], tmp_path, FakePipeline(), progress=False)
    with pytest.raises(ValueError):
        collect_decisions(prompts, tmp_path, FakePipeline(), batch_size=0, progress=False)
