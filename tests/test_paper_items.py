"""Issue 12's fixes one by one: QuickGELU, cheap CC3M checks and unreadable images, fp16 streamed targets,
published decision labels through the decision stage."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gill_fixtures import tiny_parts
from gill_lite.config import REPO_ROOT, get_profile
from gill_lite.data import DataFormatError, load_cc3m
from gill_lite.train.caches import _stream_shard, image_features, text_targets
from gill_lite.train.data import CaptionSet

torch.set_num_threads(1)
FIXTURES = REPO_ROOT / "data" / "fixtures"


# ------------------------------------------------------------------------------------------------ QuickGELU
def test_paper_profile_uses_quickgelu_openai_clip():
    import open_clip

    p = get_profile("paper")
    for cfg in (p.image_encoder, p.eval_clip):
        assert (cfg.name_or_path, cfg.pretrained) == ("ViT-L-14-quickgelu", "openai")
        assert open_clip.get_model_config(cfg.name_or_path)["quick_gelu"] is True


def test_openai_weights_in_a_gelu_build_are_refused_before_any_download(monkeypatch):
    from dataclasses import replace

    from gill_lite.backbones.image_encoder import load_image_encoder, require_quick_gelu

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="ViT-L-14-quickgelu"):
        require_quick_gelu("ViT-L-14", "openai")
    require_quick_gelu("ViT-L-14-quickgelu", "openai")
    require_quick_gelu("ViT-L-14", None)  # random weights: any activation
    p = get_profile("paper")
    gelu = replace(p, image_encoder=replace(p.image_encoder, name_or_path="ViT-L-14"))
    with pytest.raises(ValueError, match="QuickGELU"):
        load_image_encoder(gelu)  # refused from the config: create_model (and the hub) is never reached


def test_activation_class_is_checked_on_the_built_model():
    """Offline: ViT-L/14's config at one narrow layer, built without weights, with and without QuickGELU."""
    import open_clip
    from open_clip.transformer import QuickGELU

    from gill_lite.backbones.image_encoder import check_activation, uses_quick_gelu

    cfg = open_clip.get_model_config("ViT-L-14-quickgelu")
    cfg["vision_cfg"].update(layers=1, width=64, head_width=32)
    cfg["text_cfg"].update(layers=1, width=32, heads=1)
    quick = open_clip.CLIP(**cfg)
    assert uses_quick_gelu(quick) and isinstance(quick.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    check_activation(quick, "openai")
    gelu = open_clip.CLIP(**{**cfg, "quick_gelu": False})
    assert not uses_quick_gelu(gelu)
    with pytest.raises(ValueError, match="built with GELU"):
        check_activation(gelu, "openai")
    check_activation(gelu, None)


# ------------------------------------------------------------------------------------------- CC3M, images
def _copy_cc3m(tmp_path):
    import shutil

    shutil.copytree(FIXTURES / "cc3m", tmp_path / "cc3m")
    return tmp_path / "cc3m" / "cc3m.tsv"


def test_cc3m_without_images_checks_existence_only(tmp_path):
    tsv = _copy_cc3m(tmp_path)
    (tmp_path / "cc3m" / "images" / "train-000001.png").write_bytes(b"not a png")  # exists, does not decode
    rows, skipped = load_cc3m(tsv, load_images=False)
    assert len(rows) == 8 and not skipped and rows[1].image is None
    with pytest.raises(DataFormatError, match="line 3: .*cannot read image"):
        load_cc3m(tsv)  # decoding finds it
    (tmp_path / "cc3m" / "images" / "train-000002.png").write_bytes(b"")
    (tmp_path / "cc3m" / "images" / "train-000003.png").unlink()
    rows, skipped = load_cc3m(tsv, load_images=False, skip_bad=True)
    assert len(rows) == 6 and [s.where for s in skipped] == ["line 4", "line 5"]
    assert "empty" in skipped[0].reason and "not found" in skipped[1].reason


def test_unreadable_images_are_counted_when_the_cache_reads_them(tmp_path, capsys):
    from gill_lite.data import load_image

    tsv = _copy_cc3m(tmp_path)
    (tmp_path / "cc3m" / "images" / "train-000005.png").write_bytes(b"broken")
    rows, _ = load_cc3m(tsv, load_images=False)
    data = CaptionSet("cc3m-test", [r.image_path.name for r in rows], [r.caption for r in rows],
                      lambda idx: np.stack([load_image(rows[i].image_path) for i in idx]))
    enc = tiny_parts().image_encoder
    feats = image_features(data, enc, tmp_path / "cache", batch_size=4)
    assert list(feats.unreadable) == [5] and "cannot read image" in feats.unreadable[5]
    assert torch.equal(feats[[5]], feats[[4]])  # the previous readable image's features, counted
    assert "1 unreadable image(s) of 8" in capsys.readouterr().out
    again = image_features(data, enc, tmp_path / "cache", batch_size=4)  # from the cache: still reported
    assert list(again.unreadable) == [5]
    bad_first = CaptionSet("cc3m-bad-first", data.ids, data.captions,
                           lambda idx: (_ for _ in ()).throw(DataFormatError("x.png: cannot read image")))
    with pytest.raises(DataFormatError, match="no readable image before it"):
        image_features(bad_first, enc, tmp_path / "cache", batch_size=4)


# ------------------------------------------------------------------------------------------------- caches
def test_streamed_shard_matches_safetensors(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    x = torch.randn(7, 3, 4).half()
    _stream_shard(tmp_path / "a.safetensors", 7, iter([x[:3], x[3:6], x[6:]]), {"ids": "d"})
    assert torch.equal(load_file(str(tmp_path / "a.safetensors"))["features"], x)
    with safe_open(str(tmp_path / "a.safetensors"), framework="pt") as f:
        assert f.metadata() == {"ids": "d"}
    with pytest.raises(ValueError, match="expected 8"):
        _stream_shard(tmp_path / "b.safetensors", 8, iter([x]), {})
    assert not (tmp_path / "b.safetensors").exists()  # no partial file left behind


def test_text_targets_follow_the_generator_precision(tmp_path):
    parts = tiny_parts()
    gen = parts.generator
    data = CaptionSet("toy", ["a", "b", "c"], ["a red circle", "a blue square", "a circle"],
                      lambda idx: np.zeros((len(idx), 8, 8, 3), np.uint8))
    fp32 = text_targets(data, gen, tmp_path / "c", batch_size=2)
    assert list((tmp_path / "c").glob("*--text.safetensors"))
    half = SimpleNamespace(encode_text=gen.encode_text, config_name=gen.config_name,
                           pipeline=SimpleNamespace(text_encoder=SimpleNamespace(dtype=torch.float16)))
    fp16 = text_targets(data, half, tmp_path / "c", batch_size=2, shard_size=2)  # two streamed shards
    files = sorted((tmp_path / "c").glob("*--text-float16-*.safetensors"))
    assert len(files) == 2
    assert fp16[[0, 1, 2]].dtype == torch.float32
    assert torch.allclose(fp16[[0, 1, 2]], fp32[[0, 1, 2]], atol=1e-2, rtol=1e-2)


# ----------------------------------------------------------------------------------- published decisions
class FakeCollection:
    def __init__(self, root, n):
        self.root, self.ids = root, [f"tsv-{i:05d}" for i in range(n)]

    def __len__(self):
        return len(self.ids)


@pytest.mark.parametrize("name,n_rows", [("PartiPromptsAllDecisions_Alignment.tsv", 9),
                                         ("PartiPromptsDecisionsConfident.tsv", 0)])
def test_decision_stage_takes_published_labels_as_released(tmp_path, name, n_rows):
    from gill_lite.decision import stage
    from gill_lite.decision.data import load_decision_tsv

    prompts, published = load_decision_tsv(FIXTURES / "decisions" / name)
    human = tmp_path / "human.jsonl"
    human.write_text(json.dumps({"id": "tsv-00000", "vote": "ret"}) + "\n")
    judged = stage.judge_collection(get_profile("paper"), FakeCollection(tmp_path, len(prompts)), votes=published,
                                    human_path=human)
    assert judged.labels == published.labels and judged.n_human == 0
    assert judged.counts == {"gen": 2, "ret": 4, "dropped": len(prompts) - 6}
    assert judged.report["n_rows"] == n_rows  # agreement figures only on rows with 5 votes
    assert (judged.report["fleiss_kappa"] == judged.report["fleiss_kappa"]) == (n_rows > 0)  # NaN without votes
    keep = [i for i, lab in enumerate(judged.labels) if lab is not None]
    ceiling = stage.validation_ceiling(judged, keep, 2)
    assert (0 <= ceiling <= 1) if n_rows else ceiling != ceiling
