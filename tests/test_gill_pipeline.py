"""GillPipeline: one object for GILL's parts. Save / load round trips and refusals, only the chosen path runs,
and the real GILL path (a random tiny GillModel on fake frozen parts) through the VIST protocols and the chat."""
import hashlib
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from gill_fixtures import tiny_parts, tiny_train_cfg
from gill_lite.inference import GillPipeline, RetrievalIndex
from gill_lite.model import CheckpointMismatchError, GillModel
from gill_lite.model.decision import GENERATE, RETRIEVE, DecisionHead
from gill_lite.model.retrieval import RetrievalHeads

torch.set_num_threads(1)


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
    return GillPipeline(GillModel.build(parts, tiny_train_cfg()).eval(), parts)


def _stories(n=5):
    from gill_lite.evaluate.stories import from_world_story
    from gill_lite.world.stories import make_stories

    return [from_world_story(s, 32) for s in make_stories(n, seed=0)]


def test_vist_protocols_run_on_a_real_gill(gill):
    from gill_lite.config import get_profile
    from gill_lite.evaluate.vist import evaluate_vist

    pipe = gill
    stories = _stories()
    batched = pipe.img_states_batch([s.captions for s in stories[:2]])
    single = pipe.img_states(stories[1].captions)
    assert batched.shape[:2] == (2, 8)
    assert torch.allclose(batched[1], single[0], atol=1e-5)  # padding in a batch changes nothing
    summary, gen, ret = evaluate_vist(pipe, stories, get_profile("ci").eval, progress=False)
    assert set(gen.clip) == {"gill/last_caption", "gill/captions", "gill/captions_images", "sd/last_caption", "sd/captions",
                             "sd/oracle"}
    assert all(np.isfinite(v).all() and len(v) == 5 for v in gen.clip.values())
    assert set(ret.ranks) == {"gill/captions_images", "gill/captions", "clip_text/captions"}
    assert all(((r >= 0) & (r < 25 - 4)).all() for r in ret.ranks.values())


def test_chat_runs_only_the_chosen_path_on_a_real_gill(gill):
    from gill_lite.chat import GillChat

    pipe = gill
    images = _stories(2)[0].images
    pipe = pipe.with_index(pipe.build_index(images, [f"img{i}" for i in range(len(images))]))

    chat = GillChat(pipe, max_new_tokens=4)
    _fix_decision(pipe.model, 0.9)
    pipe.generator.calls.clear()
    reply = chat.respond(["show me a red circle"], force_image=True)
    (image, source, probs), = reply.images
    assert source == "retrieved" and probs["retrieve"] == pytest.approx(0.9)
    assert any((image == im).all() for im in images)
    assert pipe.generator.calls == []  # the generator never ran
    _fix_decision(pipe.model, 0.2)
    reply = chat.respond(["show me a red circle"], force_image=True)
    assert reply.images[0].source == "generated" and len(pipe.generator.calls) == 1


def _fix_decision(model, p_ret):
    """A decision head that always says the same: zero weights, the log-probabilities in the bias."""
    with torch.no_grad():
        model.decision.fc.weight.zero_()
        model.decision.fc.bias.copy_(torch.log(torch.tensor([1 - p_ret, p_ret])))


# ------------------------------------------------------------------------------------ only the chosen path runs
D = 16


class TinyGill(nn.Module):
    """Just the parts the decision, the retrieval and the generation touch: decision head, retrieval heads, mapper."""

    def __init__(self, prefer: int):
        super().__init__()
        torch.manual_seed(0)
        self.decision = DecisionHead(D)
        self.retrieval = RetrievalHeads(D, 8, 4)
        with torch.no_grad():
            self.decision.fc.weight.zero_()
            self.decision.fc.bias.zero_()
            self.decision.fc.bias[prefer] = 3.0

    @property
    def device(self):
        return torch.device("cpu")

    def map_states(self, states):
        return torch.zeros(len(states), 4, 4)


class FailingGenerator:
    def generate(self, *args, **kwargs):
        raise AssertionError("the generator must not run when the decision is retrieve")


class CountingGenerator:
    calls = 0

    def generate(self, prompt_embeds, seed=0, **kwargs):
        self.calls += 1
        return np.full((len(prompt_embeds), 8, 8, 3), 7, np.uint8)


def _index(model):
    images = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(5)])
    return RetrievalIndex.from_features(model, torch.randn(5, 8, generator=torch.Generator().manual_seed(1)),
                                        [f"train-{i}" for i in range(5)], images)


def test_retrieve_never_calls_the_generator():
    model = TinyGill(prefer=RETRIEVE)
    pipe = GillPipeline(model, SimpleNamespace(generator=FailingGenerator()), _index(model))
    out = pipe.show_image(torch.randn(1, 8, D))
    assert out.choice == "retrieve" and out.source == "retrieved" and out.retrieved_id.startswith("train-")
    assert out.probabilities["retrieve"] > 0.9
    assert out.image[0, 0, 0] == int(out.retrieved_id.split("-")[1])  # the image behind the retrieved id


def test_generate_calls_the_generator_once_and_retrieves_nothing():
    model = TinyGill(prefer=GENERATE)
    gen = CountingGenerator()
    out = GillPipeline(model, SimpleNamespace(generator=gen), _index(model)).show_image(torch.randn(1, 8, D), seed=3)
    assert out.choice == "generate" and out.retrieved_id is None and gen.calls == 1
    assert out.image.shape == (8, 8, 3)
    assert out.probabilities["generate"] == pytest.approx(1 - out.probabilities["retrieve"])


@pytest.mark.parametrize("prefer", [RETRIEVE, GENERATE])
def test_show_image_scores_the_index_once(monkeypatch, prefer):
    from gill_lite.model import functional

    calls = []
    real = functional.retrieve
    monkeypatch.setattr(functional, "retrieve", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = TinyGill(prefer=prefer)
    pipe = GillPipeline(model, SimpleNamespace(generator=CountingGenerator()), _index(model))
    states = torch.randn(1, 8, D)
    out = pipe.show_image(states)
    assert len(calls) == 1
    # the decision it made from the shared score is the one `decide` makes scoring the index itself
    assert out.probabilities == pytest.approx(pipe.decide(states))


def test_one_query_at_a_time_and_a_missing_index_is_named():
    model = TinyGill(prefer=RETRIEVE)
    pipe = GillPipeline(model, SimpleNamespace(generator=FailingGenerator()), _index(model))
    with pytest.raises(ValueError, match="one query"):
        pipe.show_image(torch.randn(2, 8, D))
    with pytest.raises(ValueError, match="no retrieval index"):
        pipe.with_index(None).show_image(torch.randn(1, 8, D))


def test_respond_decodes_then_shows_what_the_decision_chose(gill):
    pipe = gill
    images = _stories(1)[0].images
    pipe = pipe.with_index(pipe.build_index(images, [f"img{i}" for i in range(len(images))]))
    _fix_decision(pipe.model, 0.9)
    plain = pipe.respond("a red circle", max_new_tokens=3)
    assert isinstance(plain.text, str)
    if not plain.emitted_img:  # a random LM rarely emits [IMG0]: then no image unless forced
        assert plain.image is None
    forced = pipe.respond("a red circle", max_new_tokens=3, force_image=True, trim=lambda t: "")
    assert forced.text == "" and forced.image.source == "retrieved"
    if not forced.emitted_img:  # [IMG0..7] forced after the trimmed answer (nothing): the context's own states
        assert forced.image.retrieved_id == pipe.retrieve(pipe.img_states("a red circle"))[0][0][0]


# ------------------------------------------------------------------------------------- save / load round trips

def _pipeline(seed=0, **parts_kwargs):
    parts = tiny_parts(**parts_kwargs)
    torch.manual_seed(seed)
    model = GillModel.build(parts, tiny_train_cfg())
    with torch.no_grad():  # trained-looking parts: nothing left at its initial value
        for module in model.trainable_modules().values():
            for param in module.parameters():
                param.add_(torch.randn_like(param) * 0.1)
    images = np.random.default_rng(seed).integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    pipe = GillPipeline(model.eval(), parts)
    pipe.index = pipe.build_index(images, [f"im{i}" for i in range(6)])
    return pipe


def test_save_and_load_give_the_same_pipeline(tmp_path):
    pipe = _pipeline()
    folder = pipe.save_pretrained(tmp_path / "pipe")
    assert sorted(p.name for p in folder.iterdir()) == ["gill_config.json", "retrieval_images.safetensors",
                                                         "retrieval_index.safetensors", "trainable.safetensors"]
    loaded = GillPipeline.from_pretrained(folder, frozen_parts=tiny_parts())  # fresh frozen parts, same weights
    contexts = ["a red circle.", [pipe.index.images[0], "it moves left."]]
    a, b = pipe.img_states_batch(contexts), loaded.img_states_batch(contexts)
    assert torch.equal(a, b)
    assert np.array_equal(pipe.generate(a, seed=5), loaded.generate(b, seed=5))
    assert pipe.retrieve(a, k=3) == loaded.retrieve(b, k=3)
    assert pipe.decide(a[:1]) == loaded.decide(b[:1])
    assert loaded.index.ids == pipe.index.ids and np.array_equal(loaded.index_images(["im2"]), pipe.index_images(["im2"]))
    assert pipe.caption(pipe.index.images[:2], max_new_tokens=4) == loaded.caption(pipe.index.images[:2], max_new_tokens=4)
    # saved again without an index: the old index files go, so a load cannot bring them back
    loaded.with_index(None).save_pretrained(folder)
    assert GillPipeline.from_pretrained(folder, frozen_parts=tiny_parts()).index is None
    assert not list(folder.glob("retrieval_*"))


def test_other_frozen_parts_are_refused(tmp_path):
    folder = _pipeline().save_pretrained(tmp_path / "pipe")
    with pytest.raises(CheckpointMismatchError, match="lm: checkpoint 'fake-opt' != given 'other-opt'"):
        GillPipeline.from_pretrained(folder, frozen_parts=tiny_parts(lm_name="other-opt"))
    with pytest.raises(CheckpointMismatchError, match="lm_dim"):
        GillPipeline.from_pretrained(folder, frozen_parts=tiny_parts(hidden=48))
    with pytest.raises(ValueError, match="names no profile"):  # made on parts no profile names
        GillPipeline.from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="not a GillPipeline"):
        GillPipeline.from_pretrained(tmp_path)


def test_a_saved_decision_head_loads_over_the_folders(tmp_path):
    from gill_lite.model.decision import save_decision_head

    pipe = _pipeline()
    folder = pipe.save_pretrained(tmp_path / "pipe")
    head = DecisionHead(pipe.model.lm_dim)
    save_decision_head(head, tmp_path / "head.safetensors", {"note": "test"})
    loaded = GillPipeline.from_pretrained(folder, frozen_parts=tiny_parts(), decision_head=tmp_path / "head.safetensors")
    assert torch.equal(loaded.model.decision.fc.weight, head.fc.weight)
    assert not torch.equal(loaded.model.decision.fc.weight, pipe.model.decision.fc.weight)


@pytest.fixture(scope="module")
def ci_standins(tmp_path_factory):
    """The ci stand-ins with very few steps, in a temporary run folder (as tests/test_backbones_build.py)."""
    from gill_lite.backbones import ensure_standins
    from gill_lite.backbones.recipes import standin_recipe
    from gill_lite.config import get_profile

    runs = tmp_path_factory.mktemp("runs")
    old = os.environ.get("GILL_RUNS_DIR")
    os.environ["GILL_RUNS_DIR"] = str(runs)
    profile = get_profile("ci", generator={"num_inference_steps": 2})
    recipe = standin_recipe(profile, lm={"pretrain_steps": 3}, image_encoder={"pretrain_steps": 2},
                            eval_clip={"pretrain_steps": 2}, generator={"text_pretrain_steps": 2, "unet_train_steps": 2})
    ensure_standins(profile, log=lambda m: None, recipe=recipe)
    yield profile
    if old is None:
        os.environ.pop("GILL_RUNS_DIR")
    else:
        os.environ["GILL_RUNS_DIR"] = old


def test_a_folder_names_its_frozen_parts_and_loads_them_itself(ci_standins, tmp_path):
    """Real stand-ins: ``from_pretrained(folder)`` alone finds the frozen parts (and their settings: 2 sampling
    steps here, not the profile's 4) and gives the same [IMG] states and the same image at a seed."""
    from gill_lite.backbones import load_frozen_parts

    profile = ci_standins
    parts = load_frozen_parts(profile, build_missing=False)
    torch.manual_seed(0)
    pipe = GillPipeline(GillModel.build(parts, profile.train).eval(), parts, profile=profile)
    folder = pipe.save_pretrained(tmp_path / "pipe")
    loaded = GillPipeline.from_pretrained(folder)
    assert loaded.profile.generator.num_inference_steps == 2 and loaded.generator.num_inference_steps == 2
    assert all(getattr(loaded.profile, f) == getattr(profile, f)  # the frozen parts' settings, round-tripped
               for f in ("lm", "image_encoder", "generator", "eval_clip"))
    states = pipe.img_states("a small red circle at the top left.")
    assert torch.equal(states, loaded.img_states("a small red circle at the top left."))
    assert np.array_equal(pipe.generate(states, seed=3), loaded.generate(states, seed=3))
    # a training stage's folder (gill_config.json names the profile it was trained for) loads as it is
    stage = pipe.model.save_trainable(tmp_path / "stage", extra={"run": {"finished": True, "profile": "ci"}})
    from_stage = GillPipeline.from_pretrained(stage, frozen_parts=parts)
    assert torch.equal(states, from_stage.img_states("a small red circle at the top left.")) and from_stage.index is None
    assert from_stage.profile.name == "ci"
