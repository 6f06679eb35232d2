"""GILL's inference functions (`gill_lite.model.functional`): KV-cache greedy decoding, the [IMG] rule, states,
retrieval index, decision."""
import numpy as np
import pytest
import torch

from gill_fixtures import tiny_parts, tiny_train_cfg
from gill_lite.model import functional as inf
from gill_lite.model import GillModel
from gill_lite.train.steps import img_forward

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    parts = tiny_parts(layers=2)
    model = GillModel.build(parts, tiny_train_cfg(bos_before_images=False))  # the published protocol (paper)
    model.generator = parts.generator  # for the test below (a plain attribute of this test's model)
    return model


def favour_img_tokens(model, monkeypatch, bias_img0=20.0, bias_rest=50.0):
    """Make [IMG1..7] the raw argmax and [IMG0] the best allowed token, to exercise the decoding rule."""
    original = model.img_tokens.logits
    bias = torch.full((len(model.img_ids),), bias_rest)
    bias[0] = bias_img0

    def biased(hidden, base):
        out = original(hidden, base)
        return out.index_add(-1, model.img_tokens.ids, bias.expand(*out.shape[:-1], -1).contiguous())

    monkeypatch.setattr(model.img_tokens, "logits", biased)


def test_kv_cache_decoding_equals_full_recompute(model):
    embeds = inf.context_embeds(model, [np.zeros((16, 16, 3), np.uint8), "a red circle"]).unsqueeze(0)
    embeds = torch.cat([embeds, embeds.flip(1)])  # two different prompts of equal length
    with_cache = inf.greedy_decode(model, embeds, max_new_tokens=12, use_cache=True)
    without = inf.greedy_decode(model, embeds, max_new_tokens=12, use_cache=False)
    assert [r.ids for r in with_cache] == [r.ids for r in without]


def test_img_rule_and_states_with_and_without_cache(model, monkeypatch):
    favour_img_tokens(model, monkeypatch)
    embeds = inf.context_embeds(model, "a small red circle").unsqueeze(0)
    a = inf.greedy_decode(model, embeds, max_new_tokens=12, use_cache=True)[0]
    b = inf.greedy_decode(model, embeds, max_new_tokens=12, use_cache=False)[0]
    ids = model.img_ids
    assert a.ids == b.ids == (ids + ids)[:12]  # never IMG1..7 first: IMG0 then the forced rest
    assert len(a.img_states) == 1 and a.img_states[0].shape == (8, 32)
    assert torch.allclose(a.img_states[0], b.img_states[0], atol=1e-5)
    stop = inf.greedy_decode(model, embeds, max_new_tokens=30, stop_at_img=True)[0]
    assert stop.ids == ids


def test_img1_to_7_never_sampled(model, monkeypatch):
    favour_img_tokens(model, monkeypatch, bias_img0=-50.0, bias_rest=50.0)  # IMG0 unlikely, IMG1..7 favoured
    out = inf.greedy_decode(model, inf.context_embeds(model, "a blue").unsqueeze(0), max_new_tokens=10)[0]
    assert not set(out.ids) & set(model.img_ids)
    assert inf.emits_img(model, "a blue") is False


def test_emits_img_matches_decoding(model, monkeypatch):
    favour_img_tokens(model, monkeypatch)
    assert inf.img_emission(model, ["a red circle.", "there is a"]) == [True, True]


def test_one_bos_per_context(model):
    """BOS opens the context once, before its first text (published ``always_add_bos=False``)."""
    image = np.zeros((8, 8, 3), np.uint8)
    joined = inf.context_embeds(model, ["a red circle.", "it moves left."])
    ids = [model.bos_id] + model.tokenize("a red circle.") + model.tokenize("it moves left.")
    assert torch.allclose(joined, model.embed_tokens(torch.tensor(ids)))
    mixed = inf.context_embeds(model, [image, "a red circle.", image, "it moves left."])
    n_vis = model.prefix(inf.encode_images(model, [image])).shape[1]
    assert mixed.shape[0] == len(ids) + 2 * n_vis
    bos = model.embed_tokens(torch.tensor([model.bos_id]))[0]
    is_bos = [torch.allclose(row, bos) for row in mixed]
    assert sum(is_bos) == 1 and is_bos[n_vis]  # after the first image, before the first text


def test_bos_before_images_opens_every_context_and_captioning_as_trained(monkeypatch):
    """``bos_before_images``: BOS opens the context even before an image (once), a text-first context is unchanged,
    and `caption_images` decodes after ``BOS [prefix]``, the sequence the captioning loss trained on."""
    from gill_lite.train.steps import caption_inputs

    parts = tiny_parts(layers=2)
    published = GillModel.build(parts, tiny_train_cfg(bos_before_images=False))
    model = GillModel.build(parts, tiny_train_cfg(bos_before_images=True))
    model.load_trainable_state(published.trainable_state_dict())
    image = np.zeros((8, 8, 3), np.uint8)
    text_first = ["a red circle.", image, "it moves left."]
    assert torch.equal(inf.context_embeds(model, text_first), inf.context_embeds(published, text_first))
    mixed = inf.context_embeds(model, [image, "a red circle.", image, "it moves left."])
    bos = model.embed_tokens(torch.tensor([model.bos_id]))[0]
    is_bos = [torch.allclose(row, bos) for row in mixed]
    assert sum(is_bos) == 1 and is_bos[0]
    assert mixed.shape == inf.context_embeds(published, [image, "a red circle.", image, "it moves left."]).shape
    seen = {}
    real = inf.greedy_decode

    def greedy_decode(m, embeds, *a, **k):
        seen["embeds"] = embeds
        return real(m, embeds, *a, **k)

    monkeypatch.setattr(inf, "greedy_decode", greedy_decode)
    inf.caption_images(model, [image], max_new_tokens=2)
    prefix = model.prefix(inf.encode_images(model, [image]))
    trained, _, _ = caption_inputs(model, prefix, ["a red circle."], bos_first=True)
    assert torch.allclose(seen["embeds"][0], trained[0][: 1 + prefix.shape[1]])


def test_img_states_equal_the_training_forward(model):
    caption = "a large green square on the left."
    states = inf.img_states(model, caption)
    _, _, train_states = img_forward(model, [caption, "a much longer caption here, to pad the first one ."])
    assert states.states.shape == (1, 8, 32) and states.embeds.shape == (8, 32)
    assert torch.allclose(states.states[0], train_states[0], atol=1e-5)
    batch = inf.img_states_batch(model, [caption, "x", [np.zeros((8, 8, 3), np.uint8), caption]])
    assert torch.allclose(batch.states[0], states.states[0], atol=1e-5)


def test_caption_generate_retrieve_decide(model, tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    captions = inf.caption_images(model, images[:2], max_new_tokens=5)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    states = inf.img_states_batch(model, ["a red circle.", "a blue square."])
    out = inf.generate_images(model, model.generator, states, seed=0)
    assert out.dtype == np.uint8 and out.shape[0] == 2
    index = inf.RetrievalIndex.build(model, images, [f"im{i}" for i in range(5)])
    index.save(tmp_path / "index.safetensors")
    loaded = inf.RetrievalIndex.load(tmp_path / "index.safetensors")
    assert loaded.ids == index.ids and torch.equal(loaded.embeddings, index.embeddings)
    big = inf.RetrievalIndex(index.ids, index.embeddings)
    big.MAX_METADATA_IDS = 1  # forces the sidecar path
    big.save(tmp_path / "big.safetensors")
    assert (tmp_path / "big.safetensors.ids.json").exists()
    assert np.array_equal(index.images_of(["im3", "im1"]), images[[3, 1]])  # the index keeps what it was built on
    with pytest.raises(ValueError, match="ids only"):
        loaded.images_of(["im0"])
    with pytest.raises(KeyError, match="not in this retrieval index"):
        index.images_of(["nope"])
    lazy = inf.RetrievalIndex(index.ids, index.embeddings, lambda rows: images[rows])
    assert np.array_equal(lazy.images_of(["im4"]), images[[4]])
    with pytest.raises(ValueError, match="4 images for 5 ids"):
        inf.RetrievalIndex(index.ids, index.embeddings, images[:4])
    assert inf.RetrievalIndex.load(tmp_path / "big.safetensors").ids == index.ids
    top = inf.retrieve(model, loaded, states, k=3, exclude=[["im0"], []])
    assert len(top) == 2 and len(top[0]) == 3 and "im0" not in [i for i, _ in top[0]]
    assert top[1][0][1] >= top[1][1][1]
    query = inf.img_states(model, "a red circle.")
    p = inf.decide(model, query, loaded)
    assert set(p) == {"generate", "retrieve"} and p["generate"] + p["retrieve"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs a retrieval index"):
        inf.decide(model, query)


def test_the_decision_head_reads_img0_and_the_scaled_top_score(model):
    """As the published head: cat([IMG0] state, logit_scale x top-1 cosine over the index)."""
    images = np.random.default_rng(1).integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    index = inf.RetrievalIndex.build(model, images, [f"im{i}" for i in range(6)])
    states = inf.img_states_batch(model, ["a red circle.", "a blue square."])
    top = [hits[0][1] for hits in inf.retrieve(model, index, states, k=1)]
    x = inf.decision_inputs(model, states, top)
    assert x.shape == (2, model.decision.in_features) == (2, states.states.shape[-1] + 1)
    assert torch.allclose(x[:, :-1], states.states[:, 0].float())
    assert torch.allclose(x[:, -1], torch.tensor(top) * float(model.retrieval.scale().detach()))
    with pytest.raises(ValueError, match="pass top_cosines"):
        inf.decision_inputs(model, states)
    saved = {k: v.clone() for k, v in model.decision.state_dict().items()}
    try:
        with torch.no_grad():  # a head that reads only the score: decide follows the index it is given
            model.decision.fc.weight.zero_()
            model.decision.fc.bias.zero_()
            model.decision.fc.weight[1, -1] = 1.0
        query = inf.img_states(model, "a red circle.")
        near = inf.decide(model, query, index)
        far = inf.decide(model, query, inf.RetrievalIndex(index.ids, -index.embeddings))
        assert near["retrieve"] != pytest.approx(far["retrieve"])
    finally:
        model.decision.load_state_dict(saved)


def test_context_length_counts_what_context_embeds_builds(model):
    image = np.zeros((16, 16, 3), np.uint8)
    for context in ("a red circle.", ["Q: is it a red circle?\nA:", image, "Q: and this?"], [image]):
        assert inf.context_length(model, context) == inf.context_embeds(model, context).shape[0]


def test_a_model_without_an_image_encoder_says_so():
    parts = tiny_parts()
    model = GillModel.build(parts, tiny_train_cfg())
    model.image_encoder = None
    with pytest.raises(ValueError, match="no image encoder"):
        inf.encode_images(model, [np.zeros((8, 8, 3), np.uint8)])
