"""open_clip image encoders loaded from folders in open_clip's own format (no hub, random weights)."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from gill_lite.backbones.image_encoder import (
    clip_recall, load_image_encoder, save_open_clip_folder, tiny_clip_config,
)
from gill_lite.backbones.recipes import standin_recipe
from gill_lite.backbones.tokenizer import build_word_tokenizer, world_words
from gill_lite.config import get_profile

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _profile(path, which="image_encoder"):
    return get_profile("ci", **{which: {"name_or_path": str(path)}})


def _images(n=4, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def standin_folder(tmp_path_factory):
    """A stand-in-format folder: open_clip config + safetensors + our word-level tokenizer."""
    import open_clip

    folder = tmp_path_factory.mktemp("clip")
    profile = get_profile("ci")
    cfg, size = standin_recipe(profile).image_encoder, profile.image_encoder.image_size
    tok = build_word_tokenizer(world_words(), template="eos", model_max_length=cfg.context_length)
    model_cfg = tiny_clip_config(cfg, len(tok), size, tokenizer_dir=".")
    torch.manual_seed(0)
    model = open_clip.CLIP(**model_cfg).eval()
    save_open_clip_folder(model, model_cfg, folder, tokenizer=tok, image_size=size)
    return folder, model


def test_standin_folder_loads_like_a_snapshot(standin_folder):
    folder, model = standin_folder
    enc = load_image_encoder(_profile(folder))
    assert enc.hidden_size == 64 and enc.embed_dim == 64 and enc.image_size == 32
    for a, b in zip(model.state_dict().values(), enc.model.state_dict().values()):
        assert torch.equal(a, b)
    ids = enc.tokenizer(["a red circle."])
    assert ids.shape == (1, 24) and ids[0, :5].tolist()[-1] == 1  # ... "." then </s>
    images = _images()
    feats = enc.encode(images)
    assert feats.shape == (4, 64) and feats.dtype == torch.float32
    # encode is the pre-projection pooled vector: projecting and normalising it gives embed_images
    projected = torch.nn.functional.normalize(feats @ enc.model.visual.proj, dim=-1)
    torch.testing.assert_close(projected, enc.embed_images(images))
    texts = enc.embed_texts(["a red circle.", "a blue square at the top."])
    torch.testing.assert_close(texts.norm(dim=-1), torch.ones(2))
    # the eval_clip slot loads the same way
    assert load_image_encoder(_profile(folder, "eval_clip"), "eval_clip").config_name == enc.config_name


def test_retrained_weights_of_the_same_architecture_get_another_name(standin_folder, tmp_path):
    """A GILL checkpoint or feature cache made with one CLIP must not be taken for another one's: the name hashes
    the weights too, not only the config."""
    import open_clip

    from gill_lite.backbones.cards import weights_digest

    folder, model = standin_folder
    first = load_image_encoder(_profile(folder)).config_name
    other = tmp_path / folder.name  # same basename, same config, other weights
    model_cfg = __import__("json").loads((folder / "open_clip_config.json").read_text())["model_cfg"]
    torch.manual_seed(1)
    retrained = open_clip.CLIP(**model_cfg).eval()
    tok = build_word_tokenizer(world_words(), template="eos", model_max_length=24)
    save_open_clip_folder(retrained, model_cfg, other, tokenizer=tok, image_size=32)
    assert load_image_encoder(_profile(other)).config_name != first
    assert weights_digest(folder) == weights_digest(folder) != weights_digest(other)


def test_preprocess_accepts_pil_and_rejects_bad_input(standin_folder):
    folder, _ = standin_folder
    enc = load_image_encoder(_profile(folder))
    images = _images(2)
    pil = [Image.fromarray(im) for im in images]
    torch.testing.assert_close(enc.encode(pil), enc.encode(images))
    with pytest.raises(ValueError, match="uint8"):
        enc.encode(images.astype(np.float32))
    with pytest.raises(ValueError, match="which"):
        load_image_encoder(_profile(folder), which="vae")


def test_recall_of_a_perfect_and_a_constant_encoder():
    class Fake:
        def embed_images(self, images):
            return torch.nn.functional.one_hot(torch.as_tensor(images[:, 0, 0, 0]).long(), 100).float()

        def embed_texts(self, texts):
            return torch.nn.functional.one_hot(torch.tensor([int(t) for t in texts]), 100).float()

    images = np.zeros((100, 2, 2, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(100)
    assert clip_recall(Fake(), images, [str(i) for i in range(100)])["recall_at_1"] == 1.0
    assert clip_recall(Fake(), images, ["0"] * 100)["recall_at_1"] == 0.01
    with pytest.raises(ValueError):
        clip_recall(Fake(), images[:50], ["0"] * 50)


def test_paper_shaped_vit_l14_one_layer(tmp_path):
    """ViT-L/14's config (image 224, width 1024, embed 768) at one layer per tower, in open_clip's format:
    the pooled pre-projection vector GILL reads is 1024-d, the CLIP embedding 768-d."""
    import open_clip

    model_cfg = open_clip.get_model_config("ViT-L-14")
    model_cfg["vision_cfg"]["layers"] = 1
    model_cfg["text_cfg"]["layers"] = 1
    model = open_clip.CLIP(**model_cfg).eval()
    save_open_clip_folder(model, model_cfg, tmp_path, image_size=224)  # no tokenizer: open_clip's bundled BPE
    enc = load_image_encoder(_profile(tmp_path))
    assert enc.image_size == 224 and enc.hidden_size == 1024 and enc.embed_dim == 768
    images = _images(2, size=32)  # upsampled to 224 by the preprocessing
    assert enc.preprocess(images).shape == (2, 3, 224, 224)
    assert enc.encode(images).shape == (2, 1024)
    assert enc.embed_images(images).shape == (2, 768)
    assert enc.embed_texts(["a red circle."]).shape == (1, 768)
