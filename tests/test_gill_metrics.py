"""The stage figures' parsing and ceilings (no model needed)."""
from gill_lite.evaluate.stages import _accuracy, parse_caption, retrieval_ceiling
from gill_lite.world.attributes import Shape
from gill_lite.world.captions import SINGLE_TEMPLATES, caption_shape
from gill_lite.world.corpus import make_split


def test_parse_caption_reads_every_template_back():
    shape = Shape("triangle", "yellow", "large", "bottom right")
    for t in range(len(SINGLE_TEMPLATES)):
        assert parse_caption(caption_shape(shape, t)) == shape.to_dict()
    for pos in ("top", "left", "middle", "top left"):
        assert parse_caption(caption_shape(shape.replace(position=pos), 0))["position"] == pos
    assert parse_caption("a circle") == {"kind": "circle", "colour": None, "size": None, "position": None}


def test_accuracy_counts_all_attributes_together():
    shapes = [Shape("circle", "red", "small", "top"), Shape("square", "blue", "large", "left")]
    predicted = [parse_caption("a small red circle at the top."), parse_caption("a large blue circle on the left.")]
    acc = _accuracy(predicted, shapes)
    assert acc["kind"] == 0.5 and acc["colour"] == 1.0 and acc["all"] == 0.5


def test_retrieval_ceiling():
    examples = make_split("test", 50)
    c = retrieval_ceiling(examples, (1, 50))
    assert c["R@50"] == 1.0 and 0 < c["R@1"] <= 1.0
    unique = {e.shape: e for e in examples}.values()
    assert retrieval_ceiling(list(unique), (1,))["R@1"] == 1.0


def test_linear_probe_reads_a_linear_code():
    import torch

    from gill_lite.evaluate.stages import linear_probe_accuracy
    from gill_lite.world.attributes import VALUES

    examples = make_split("train", 160)
    def code(e):  # one-hot attributes: perfectly linear
        return torch.cat([torch.nn.functional.one_hot(torch.tensor(VALUES[a].index(getattr(e.shape, a))), len(VALUES[a]))
                          for a in VALUES]).float()
    feats = torch.stack([code(e) for e in examples])
    acc = linear_probe_accuracy(feats[:120], [e.shape for e in examples[:120]], feats[120:], [e.shape for e in examples[120:]], steps=60)
    assert acc["all"] >= 0.95
    noise = torch.randn_like(feats)
    assert linear_probe_accuracy(noise[:120], [e.shape for e in examples[:120]], noise[120:],
                                 [e.shape for e in examples[120:]], steps=60)["all"] < 0.5


def test_img_state_probe_reads_img0_apart_from_the_mean(monkeypatch):
    """The ``img0`` probe reads only the first [IMG] state: a code carried by [IMG1..7] alone reaches the mean's
    probe and not the img0 one."""
    import torch

    from gill_lite.evaluate import stages
    from gill_lite.model import functional
    from gill_lite.world.attributes import VALUES

    examples = make_split("train", 160)
    by_caption = {e.caption: e.shape for e in examples}

    def fake_states(model, captions, batch_size=64):
        rows = []
        for c in captions:
            code = torch.cat([torch.nn.functional.one_hot(torch.tensor(VALUES[a].index(getattr(by_caption[c], a))),
                                                          len(VALUES[a])) for a in VALUES]).float()
            rows.append(torch.cat([torch.randn(1, code.numel()), code.expand(7, -1)]))
        return functional.ImgStates(torch.stack(rows), torch.zeros(8, rows[0].shape[1]))

    monkeypatch.setattr(functional, "img_states_batch", fake_states)
    out = stages.img_state_probe(None, examples[:120], examples[120:], steps=200)
    assert out["mean"]["all"] >= 0.95 and out["img0"]["all"] < 0.5


def test_recall_breaks_ties_in_expectation():
    import torch

    from gill_lite.evaluate.stages import diagonal_recall_at_k as recall_at_k

    scores = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.5, 0.9], [0.0, 0.0, 1.0]])
    r = recall_at_k(scores, (1, 2))
    # query 0 ties with one image: R@1 = 1/2; query 1 has one above: R@1 = 0, R@2 = 1; query 2 exact
    assert r["R@1"] == (0.5 + 0 + 1) / 3 and r["R@2"] == 1.0
