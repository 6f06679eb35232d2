"""The decision stage end to end on a fake GILL that knows the world: collect -> judge -> confident -> train ->
choices, and the files each step leaves (votes.json, the decision TSV, a person's votes)."""
import numpy as np
import torch

from gill_lite.config import get_profile
from gill_lite.data import load_decisions
from gill_lite.decision import stage
from gill_lite.decision.classifier import fit_decision
from gill_lite.decision.collect import collect_decisions
from gill_lite.model.decision import DecisionHead
from gill_lite.widgets import JudgingPanel, shown_order
from gill_lite.world.prompts import make_decision_prompts
from gill_lite.world.attributes import Scene
from gill_lite.world.render import render_scene


class WorldGill:
    """A GillPipeline's collection calls on a fake that knows the world. Generation right for novel prompts (one attribute wrong otherwise); retrieval exact for corpus prompts
    (one attribute wrong otherwise); the [IMG0] state carries the category plus noise."""

    def __init__(self, prompts):
        self.by_text = {p.text: p for p in prompts}

    def img_states_batch(self, texts):
        self._texts = list(texts)  # generate/retrieve get only the states; remember whose they are
        g = torch.Generator().manual_seed(len(texts))
        s = torch.randn(len(texts), 8, 12, generator=g)
        s[:, 0, 0] += torch.tensor([3.0 if self.by_text[t].category == "novel" else -3.0 for t in texts])
        return s

    def _draw(self, texts, good_for):
        out = []
        for t in texts:
            p = self.by_text[t]
            shape = p.shape if p.category == good_for else p.shape.replace(colour="green" if p.shape.colour != "green" else "red")
            out.append(render_scene(Scene((shape,)), 32))
        return np.stack(out)

    def generate(self, states, seed):
        return self._draw(self._texts, "novel")

    def retrieve(self, states, k=1):  # a closer top match for prompts of seen combinations
        return [[(f"train-{i}", 0.9 if self.by_text[t].category == "corpus" else 0.6)] for i, t in enumerate(self._texts)]

    def decision_inputs(self, states, top_cosines):
        from gill_lite.model.decision import decision_features

        return decision_features(states[:, 0], torch.tensor(top_cosines) * 10.0)

    def index_images(self, ids):
        return self._draw(self._texts, "corpus")


def test_whole_stage_on_a_world_aware_fake(tmp_path, monkeypatch):
    monkeypatch.setenv("GILL_RUNS_DIR", str(tmp_path))
    profile = get_profile("ci", decision={"n_train": 80, "steps": 300, "lr": 1e-2})
    prompts = make_decision_prompts(160, seed=0)
    collection = collect_decisions(prompts, tmp_path / "col", WorldGill(prompts), batch_size=32, progress=False)

    # a person judges the first two prompts in the widget; their votes replace judge 1's there
    panel = JudgingPanel(stage.judging_items(collection, 2), tmp_path / "human.jsonl", seed=0)
    panel.vote("first")
    panel.vote("first")
    judged = stage.judge_collection(profile, collection, eval_clip=None, human_path=tmp_path / "human.jsonl")
    assert judged.n_human == 2
    assert judged.votes[0][0] == shown_order(collection.ids[0], 0)[0]
    assert judged.counts["gen"] + judged.counts["ret"] + judged.counts["dropped"] == 160
    assert judged.counts["gen"] > 30 and judged.counts["ret"] > 30  # the better image mostly wins
    by_cat = stage.label_by_category(judged.labels, collection.categories)
    assert by_cat["novel"]["gen"] > by_cat["novel"]["ret"] and by_cat["corpus"]["ret"] > by_cat["corpus"]["gen"]
    assert 0 < judged.report["fleiss_kappa"] < 1

    # the files: votes.json and the published-format TSV with the 5 votes
    rows = load_decisions(collection.root / "decisions.tsv")
    assert len(rows) == 160 and rows[5].decisions == judged.votes[5] and rows[5].category == collection.categories[5]
    assert stage.load_votes_file(collection)["labels"] == judged.labels

    features, labels, keep = stage.confident_set(collection, judged.labels)
    assert len(features) == len(labels) == len(keep) == judged.counts["gen"] + judged.counts["ret"]
    head = DecisionHead(12)
    result = fit_decision(profile, head, features, labels, progress=False)
    assert result.val["macro_f1"] > 0.8
    ceiling = stage.validation_ceiling(judged, keep, result.n_train)
    assert 0.5 < ceiling <= 1.0
    shares = stage.choice_shares(head, collection.features(), collection.categories)
    assert shares["retrieval_share_corpus"] > 0.8 and shares["generation_share_novel"] > 0.8


def test_collection_fingerprint_follows_weights_not_timestamps(tmp_path):
    """A rebuilt stand-in (same names, same sizes, other weights) needs a new collection; a touched file does not."""
    import os

    from gill_lite.config import get_profile
    from gill_lite.decision.stage import frozen_fingerprint

    folders = {}
    for part in ("lm", "clip", "generator"):
        folders[part] = tmp_path / part
        (folders[part] / "unet").mkdir(parents=True)
        (folders[part] / "unet" / "w.safetensors").write_bytes(b"\0" * 4096)
    profile = get_profile("ci", lm={"name_or_path": str(folders["lm"])},
                          image_encoder={"name_or_path": str(folders["clip"])},
                          generator={"name_or_path": str(folders["generator"])})
    first = frozen_fingerprint(profile)
    weights = folders["generator"] / "unet" / "w.safetensors"
    os.utime(weights, (1, 1))
    assert frozen_fingerprint(profile) == first
    weights.write_bytes(b"\1" * 4096)  # the UNet retrained: GILL's names keep still, the images change
    assert frozen_fingerprint(profile) != first
