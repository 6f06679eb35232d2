"""The real GILL path (random tiny GillModel on fake frozen parts): VIST protocols and the chat end to end."""
import hashlib

import numpy as np
import pytest
import torch

from gill_fixtures import tiny_parts, tiny_train_cfg


class Encoder:
    """The fake pooled encoder plus CLIP-style unit-norm image and text embeddings."""

    def __init__(self, inner):
        self.inner, self.hidden_size, self.config_name = inner, inner.hidden_size, inner.config_name

    def encode(self, images):
        return self.inner.encode(images)

    def embed_images(self, images):
        return torch.nn.functional.normalize(self.encode(np.asarray(images)), dim=-1)

    def embed_texts(self, texts):
        rows = []
        for t in texts:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            rows.append(torch.randn(self.hidden_size, generator=torch.Generator().manual_seed(seed)))
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


@pytest.fixture(scope="module")
def gill():
    from gill_lite.model import GillModel

    parts = tiny_parts()
    parts.image_encoder = Encoder(parts.image_encoder)
    parts.eval_clip = parts.image_encoder
    gen = parts.generator
    gen.calls = []
    plain_generate = gen.generate

    def generate(prompt_embeds, seed=0, **kw):
        gen.calls.append(seed)
        return plain_generate(prompt_embeds, seed, **kw)

    gen.generate = generate
    gen.generate_from_text = lambda captions, seed=0: plain_generate(gen.encode_text(captions), seed)
    model = GillModel.build(parts, tiny_train_cfg()).eval()
    return model, parts


def _stories(n=5):
    from gill_lite.evaluate.stories import from_world_story
    from gill_lite.world.stories import make_stories

    return [from_world_story(s, 32) for s in make_stories(n, seed=0)]


def test_vist_protocols_run_on_a_real_gill(gill):
    from gill_lite.config import get_profile
    from gill_lite.evaluate.vist import evaluate_vist
    from gill_lite.evaluate.runner import GillRunner

    model, parts = gill
    runner = GillRunner(model, parts)
    stories = _stories()
    batched = runner.img_states_batch([s.captions for s in stories[:2]])
    single = runner.img_states(stories[1].captions)
    assert batched.shape[:2] == (2, 8)
    assert torch.allclose(batched[1], single[0], atol=1e-5)  # padding in a batch changes nothing
    summary, gen, ret = evaluate_vist(runner, parts, stories, get_profile("ci").eval, progress=False)
    assert set(gen.clip) == {"gill/last_caption", "gill/captions", "gill/captions_images", "sd/last_caption", "sd/captions",
                             "sd/oracle"}
    assert all(np.isfinite(v).all() and len(v) == 5 for v in gen.clip.values())
    assert set(ret.ranks) == {"gill/captions_images", "gill/captions", "clip_text/captions"}
    assert all(((r >= 0) & (r < 25 - 4)).all() for r in ret.ranks.values())


def test_chat_runs_only_the_chosen_path_on_a_real_gill(gill, monkeypatch):
    from gill_lite.chat import GillChat
    from gill_lite.inference import RetrievalIndex

    model, parts = gill
    images = _stories(2)[0].images
    index = RetrievalIndex.build(model, images, [f"img{i}" for i in range(len(images))])

    def fixed(p_ret):  # a decision head that always says the same: zero weights, the logits in the bias
        with torch.no_grad():
            model.decision.fc.weight.zero_()
            model.decision.fc.bias.copy_(torch.log(torch.tensor([1 - p_ret, p_ret])))

    chat = GillChat(model, parts, index, images, max_new_tokens=4)
    fixed(0.9)
    parts.generator.calls.clear()
    reply = chat.respond(["show me a red circle"], force_image=True)
    (image, source, probs), = reply.images
    assert source == "retrieved" and probs["retrieve"] == pytest.approx(0.9)
    assert any((image == im).all() for im in images)
    assert parts.generator.calls == []  # the generator never ran
    fixed(0.2)
    reply = chat.respond(["show me a red circle"], force_image=True)
    assert reply.images[0].source == "generated" and len(parts.generator.calls) == 1
