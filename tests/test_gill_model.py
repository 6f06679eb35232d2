"""GILL's model parts on tiny random frozen parts: sizes, [IMG] rows, save/load, paper shapes."""
import pytest
import torch

from gill_fixtures import tiny_parts, tiny_train_cfg
from gill_lite.model import CheckpointMismatchError, GillModel
from gill_lite.train.loop import make_optimizer, trainable_parameters
from gill_lite.train.steps import compute_losses, img_inputs

torch.set_num_threads(1)
CAPTIONS = ["a small red circle at the top left.", "there is a large blue square on the right.",
            "a green triangle in the middle, small.", "at the bottom is a large yellow circle."]


def batch(parts, n=4):
    images = torch.randint(0, 255, (n, 16, 16, 3), dtype=torch.uint8).numpy()
    return {"captions": CAPTIONS[:n], "image_features": parts.image_encoder.encode(images),
            "text_targets": parts.generator.encode_text(CAPTIONS[:n])}


def step_stage(model, parts, stage, steps=3, weight_decay=0.01):
    named = trainable_parameters(model, stage)
    opt = make_optimizer(named, tiny_train_cfg(weight_decay=weight_decay, lr=1e-2))
    for _ in range(steps):
        loss = sum(compute_losses(model, batch(parts), stage, model.train_cfg).values())
        loss.backward()
        opt.step()
        opt.zero_grad()
        model.img_tokens.rescale_()
    return opt


def test_sizes_come_from_the_frozen_parts():
    parts = tiny_parts(hidden=40, image_hidden=12, max_length=5, text_width=9)
    m = GillModel.build(parts, tiny_train_cfg())
    assert m.prefix(torch.zeros(2, 12)).shape == (2, 4, 40)
    out = m.map_states(torch.zeros(3, 8, 40))
    assert out.shape == (3, 5, 9)
    assert m.retrieval.embed_image(torch.zeros(2, 12)).shape == (2, m.train_cfg.retrieval_dim)
    assert m.decision(torch.zeros(2, 41)).shape == (2, 2)  # [IMG0] state + top retrieval score
    assert m.tokenizer.convert_ids_to_tokens(m.img_ids) == [f"[IMG{i}]" for i in range(8)]
    assert "<|image|>" in m.tokenizer.get_vocab()


def test_img_tokens_are_idempotent_and_appended():
    parts = tiny_parts()
    a = GillModel.build(parts, tiny_train_cfg())
    b = GillModel.build(parts, tiny_train_cfg())  # same LM: tokens found, nothing added twice
    assert a.img_ids == b.img_ids
    assert len(parts.lm.tokenizer) == parts.lm.model.get_input_embeddings().weight.shape[0]


@pytest.mark.parametrize("tied", [True, False])
def test_gradient_mask_only_img_rows_learn(tied):
    parts = tiny_parts(tied=tied)
    m = GillModel.build(parts, tiny_train_cfg())
    emb = m.lm.get_input_embeddings().weight.detach().clone()
    head = m.lm.get_output_embeddings().weight.detach().clone()
    lm_params = {n: p.detach().clone() for n, p in m.lm.named_parameters()}
    rows = m.img_tokens.rows.detach().clone()
    head_rows = None if tied else m.img_tokens.head_rows.detach().clone()
    # untied: the [IMG] prediction loss reaches only the head rows; the input rows learn from gen/ret losses
    step_stage(m, parts, "img_tokens" if tied else "joint", steps=3)
    assert torch.equal(m.lm.get_input_embeddings().weight, emb)  # every frozen row (and the stale IMG rows) unchanged
    assert torch.equal(m.lm.get_output_embeddings().weight, head)
    assert all(torch.equal(p, lm_params[n]) for n, p in m.lm.named_parameters())
    assert not torch.allclose(m.img_tokens.rows, rows)
    assert (m.img_tokens.rows - rows).norm(dim=1)[0] > 0  # [IMG0] learns from its label
    if not tied:
        assert not torch.allclose(m.img_tokens.head_rows, head_rows)
    # rescaled to the frozen rows' mean norm after each step
    norms = m.img_tokens.rows.norm(dim=1)
    assert torch.allclose(norms, m.img_tokens.frozen_norm.expand_as(norms), rtol=1e-5)


def test_img_rows_are_used_in_embeddings_and_logits():
    parts = tiny_parts()
    m = GillModel.build(parts, tiny_train_cfg())
    ids = torch.tensor([[1, 5, m.img_ids[0], m.img_ids[3]]])
    e = m.embed_tokens(ids)
    assert torch.equal(e[0, 2], m.img_tokens.rows[0]) and torch.equal(e[0, 3], m.img_tokens.rows[3])
    assert torch.equal(e[0, 1], m.lm.get_input_embeddings().weight[5])
    h, logits, _ = m.lm_forward(e)
    assert torch.allclose(logits[0, :, m.img_ids[2]], h[0] @ m.img_tokens.rows[2], atol=1e-5)


def test_no_weight_decay_on_frozen_rows():
    parts = tiny_parts()
    m = GillModel.build(parts, tiny_train_cfg())
    emb = m.lm.get_input_embeddings().weight.detach().clone()
    opt = step_stage(m, parts, "joint", steps=3, weight_decay=0.5)  # a large decay would visibly shrink rows
    in_opt = {p.data_ptr() for g in opt.param_groups for p in g["params"]}
    assert m.lm.get_input_embeddings().weight.data_ptr() not in in_opt
    assert torch.equal(m.lm.get_input_embeddings().weight, emb)
    groups = {g["weight_decay"]: g["params"] for g in opt.param_groups}
    assert any(p is m.img_tokens.rows for p in groups[0.0]) and any(p is m.retrieval.logit_scale for p in groups[0.0])


def test_published_quirk_would_shrink_masked_rows():
    """The contrast: a gradient-masked full matrix under AdamW's decoupled decay loses norm on frozen rows."""
    w = torch.nn.Parameter(torch.ones(4, 3))
    opt = torch.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    w.grad = torch.zeros_like(w)
    w.grad[0] = 1.0  # only row 0 "trainable"; rows 1..3 masked to zero
    opt.step()
    assert (w[1:] < 1).all()


def test_img_inputs_labels():
    parts = tiny_parts()
    m = GillModel.build(parts, tiny_train_cfg())
    ids, mask, labels, rows, pos = img_inputs(m, CAPTIONS[:2])
    n = len(m.tokenize(CAPTIONS[0]))
    assert ids[0, 0] == m.bos_id and ids[0, 1 + n] == m.img_ids[0]
    assert labels[0, 0] == -100 and labels[0, 1 + n] == m.img_ids[0]
    assert (labels[0, 2 + n : 9 + n] == -100).all()  # [IMG1..7]: no label
    assert rows.tolist() == [0, 1] and torch.equal(ids[0, pos[0]], torch.tensor(m.img_ids))


def test_img_inputs_pair_as_published():
    """``BOS caption_a [IMG0..7] caption_b [IMG0..7]``: one BOS, labels on both captions and both [IMG0], and
    both blocks' positions (published gill/models.py forward, retrieval / generation modes)."""
    m = GillModel.build(tiny_parts(), tiny_train_cfg())
    a, b = m.tokenize(CAPTIONS[0]), m.tokenize(CAPTIONS[1])
    img, ign = list(m.img_ids), [-100] * 7
    ids, mask, labels, rows, pos = img_inputs(m, CAPTIONS[:3], groups=[(0, 1), (2,)])
    assert ids.shape[0] == 2 and rows.tolist() == [0, 0, 1]
    L = 1 + len(a) + 8 + len(b) + 8
    assert ids[0, :L].tolist() == [m.bos_id, *a, *img, *b, *img] and int(mask[0].sum()) == L
    assert labels[0, :L].tolist() == [-100, *a, img[0], *ign, *b, img[0], *ign]
    assert (ids[0] == m.bos_id).sum() == 1  # the second caption's BOS is removed
    assert pos[0].tolist() == list(range(1 + len(a), 9 + len(a))) and pos[1].tolist() == list(range(L - 8, L))
    _, _, _, rows_b, pos_b = img_inputs(m, CAPTIONS[:3], groups=[(1, 0), (2,)])  # order within the pair counts
    assert pos_b[1].tolist() == list(range(1 + len(b), 9 + len(b)))
    with pytest.raises(ValueError):
        img_inputs(m, CAPTIONS[:3], groups=[(0, 1)])  # example 2 missing


def test_save_load_roundtrip_and_refusal(tmp_path):
    parts = tiny_parts()
    m = GillModel.build(parts, tiny_train_cfg())
    step_stage(m, parts, "joint", steps=1)
    m.save_trainable(tmp_path / "ck")
    state = m.trainable_state_dict()
    assert not any(k.startswith("lm.") for k in state)
    assert state["img_tokens.rows"].shape == (8, 32)
    again = GillModel.from_trainable(tmp_path / "ck", parts)
    assert all(torch.equal(v, again.trainable_state_dict()[k]) for k, v in state.items())
    other = tiny_parts(lm_name="another-opt")
    with pytest.raises(CheckpointMismatchError, match="lm"):
        GillModel.from_trainable(tmp_path / "ck", other)
    with pytest.raises(CheckpointMismatchError, match="gen_max_length"):
        GillModel.from_trainable(tmp_path / "ck", tiny_parts(max_length=7))
    # a stage checkpoint of an earlier build, whose (never trained) decision head read [IMG0] alone, still loads
    fresh = GillModel.build(parts, tiny_train_cfg())
    old = dict(state, **{"decision.fc.weight": state["decision.fc.weight"][:, :-1]})
    before = {k: v.clone() for k, v in fresh.decision.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match="decision.fc.weight"):  # strict unless it is a stage's
        fresh.load_trainable_state(old)
    fresh.load_trainable_state(old, untrained_decision=True)
    assert torch.equal(fresh.mapper.state_dict()[next(iter(fresh.mapper.state_dict()))],
                       state["mapper." + next(iter(fresh.mapper.state_dict()))])
    assert all(torch.equal(v, before[k]) for k, v in fresh.decision.state_dict().items())
    other_shape = dict(state, **{"img_tokens.rows": state["img_tokens.rows"][:, :-1]})  # anything else is refused
    with pytest.raises(CheckpointMismatchError, match="img_tokens.rows"):
        fresh.load_trainable_state(other_shape, untrained_decision=True)


def test_paper_shaped_forward_at_reduced_depth():
    """OPT width 4096 (1 layer), image hidden 1024, mapper to 77 x 768: the paper's sizes, from the parts alone."""
    from gill_lite.config import get_profile

    parts = tiny_parts(hidden=4096, layers=1, heads=32, image_hidden=1024, max_length=77, text_width=768)
    m = GillModel.build(parts, get_profile("paper").train)
    sizes = {name: sum(p.numel() for p in mod.parameters()) for name, mod in m.trainable_modules().items()}
    assert sizes["prefix"] == 1024 * 4 * 4096 + 4 * 4096
    total = sum(sizes.values())
    assert 40e6 < total < 60e6, sizes  # "about 50M parameters at paper scale"
    losses = compute_losses(m, batch(parts, 2), "joint", m.train_cfg)
    assert set(losses) == {"caption", "img", "gen", "ret"} and all(torch.isfinite(v) for v in losses.values())
    assert m.map_states(torch.zeros(2, 8, 4096)).shape == (2, 77, 768)


def test_a_checkpoint_keeps_its_bos_setting_and_older_ones_load_as_published(tmp_path):
    """``bos_before_images`` is architecture (it changes what the prefix was trained after): a checkpoint rebuilds
    with its own setting whatever the profile says, and one saved before the field existed (no key) with the
    published ``[prefix] BOS``."""
    import json

    parts = tiny_parts()
    GillModel.build(parts, tiny_train_cfg(bos_before_images=True)).save_trainable(tmp_path / "first")
    first = GillModel.from_trainable(tmp_path / "first", parts, tiny_train_cfg(bos_before_images=False))
    assert first.train_cfg.bos_before_images is True  # the checkpoint's setting, not the profile's
    GillModel.build(parts, tiny_train_cfg()).save_trainable(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "gill_config.json").read_text())
    del config["arch"]["bos_before_images"]
    (tmp_path / "old" / "gill_config.json").write_text(json.dumps(config))
    old = GillModel.from_trainable(tmp_path / "old", parts, tiny_train_cfg(bos_before_images=True))
    assert old.train_cfg.bos_before_images is False
