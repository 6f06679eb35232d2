"""The context-chain measurement: probes, determined-only scoring, every link on a random GILL."""
import pytest
import torch

from gill_fixtures import tiny_parts, tiny_train_cfg
from gill_lite.evaluate import chain
from gill_lite.model import GillModel
from gill_lite.world.stories import make_stories

torch.set_num_threads(1)


def test_linear_probe_reads_a_linear_signal_and_not_noise():
    from gill_lite.evaluate.stages import linear_probe_predictions
    from gill_lite.world.attributes import KINDS, all_shapes

    g = torch.Generator().manual_seed(0)
    shapes = [all_shapes()[i] for i in torch.randint(0, 216, (300,), generator=g).tolist()]
    kinds = torch.tensor([KINDS.index(s.kind) for s in shapes])
    signal = torch.nn.functional.one_hot(kinds, 3).float() + 0.1 * torch.randn(300, 3, generator=g)
    x = torch.cat([signal, torch.randn(300, 5, generator=g)], 1)
    predicted = linear_probe_predictions(x[:200], shapes[:200], x[200:])
    assert (predicted["kind"] == kinds[200:]).float().mean() > 0.95
    noise = linear_probe_predictions(torch.randn(200, 8, generator=g), shapes[:200], torch.randn(100, 8, generator=g))
    assert (noise["kind"] == kinds[200:]).float().mean() < 0.6


def test_only_determined_stories_count():
    stories = chain.chain_stories(make_stories(6, seed=0), 8)
    hits = [1.0] * 6
    for s, h in zip(stories, range(6)):
        s.known["captions"] = ["kind"] if h < 2 else []
    assert chain._determined_mean([1, 0, 1, 1, 1, 1], stories, "captions", "kind") == 0.5
    assert chain._determined_mean(hits, stories, "captions", "colour") is None


def test_every_link_is_measured():
    parts = tiny_parts()
    model = GillModel.build(parts, tiny_train_cfg())
    fit = chain.chain_stories(make_stories(12, seed=0, stream="lm"), 8)
    ev = chain.chain_stories(make_stories(6, seed=0), 8)
    out = chain.measure_chain(model, parts.generator, fit, ev, settings=("last_caption", "captions_images"),
                              progress=False)
    for setting in ("last_caption", "captions_images"):
        assert set(out[setting]) == set(chain.LINKS)
        for link, accs in out[setting].items():
            for a, v in accs.items():
                n = out["counts"][setting][a]
                assert (v is None) == (n == 0) and (v is None or 0.0 <= v <= 1.0)
    table = chain.chain_table(out)
    assert table.count("| captions_images |") == len(chain.LINKS) + 1 and "| last_caption | describe |" in table
    lines = chain.chain_lines(out)
    assert "chain.captions_images.img_probe.kind" in lines and lines["chain.captions_images.determined.kind"] == 6
    with pytest.raises(ValueError, match="unknown setting"):
        chain.measure_chain(model, parts.generator, fit, ev, settings=("nope",), progress=False)


def test_mapper_kind_by_captions_read_matches_the_mapper_link_at_five_captions():
    parts = tiny_parts()
    model = GillModel.build(parts, tiny_train_cfg())
    ev = chain.chain_stories(make_stories(6, seed=0), 8)
    by_k = chain.mapper_kind_by_captions_read(model, parts.generator, ev, progress=False)
    assert sorted(by_k) == [1, 2, 3, 4, 5] and all(0.0 <= v <= 1.0 for v in by_k.values())
    out = chain.measure_chain(model, parts.generator, ev, ev, settings=("captions",), draw=False, progress=False)
    assert out["counts"]["captions"]["kind"] == len(ev)  # the first caption determines the kind in every story
    assert by_k[5] == pytest.approx(out["captions"]["mapper"]["kind"])  # the whole story is the captions setting
    ev[0].captions[0] = "It moves up."
    with pytest.raises(ValueError, match="does not name their kind"):
        chain.mapper_kind_by_captions_read(model, parts.generator, ev, progress=False)


def test_lm_end_mass_is_the_frozen_lms_own_next_token_probability_of_ending():
    """Against the LM run on plain token ids (one BOS, the captions' words): GILL's [IMG] rows play no part."""
    parts = tiny_parts()
    model = GillModel.build(parts, tiny_train_cfg())
    stories = make_stories(3, seed=0)
    by_k = chain.lm_end_mass_by_captions_read(model, stories)
    assert sorted(by_k) == [1, 2, 3, 4, 5]
    with torch.no_grad():
        for k in (1, 5):
            masses = []
            for s in stories:
                ids = [model.bos_id] + [t for c in s.captions[:k] for t in model.tokenize(c)]
                p = torch.softmax(model.lm(torch.tensor([ids])).logits[0, -1].float(), -1)
                masses.append((p[model.bos_id] + p[model.tokenize("q")[0]]).item())
            assert by_k[k] == pytest.approx(sum(masses) / len(masses), abs=1e-5)
    with torch.no_grad():
        model.img_tokens.rows.add_(5.0)  # the [IMG] rows move; the LM's own distribution does not
    assert chain.lm_end_mass_by_captions_read(model, stories) == pytest.approx(by_k, abs=1e-6)
    with pytest.raises(ValueError, match="not one"):
        chain.lm_end_mass_by_captions_read(model, stories, end_words=("the circle",))


def test_described_input_replaces_each_image_by_its_frames_caption():
    from gill_lite.evaluate.stories import from_world_story
    from gill_lite.world.captions import caption_shape

    world = make_stories(3, seed=0)
    for stories in (chain.chain_stories(world, 8), chain.chain_stories([from_world_story(s, 8) for s in world], 8)):
        contexts = chain._contexts(stories, chain.DESCRIBED)
        for ctx, s, w in zip(contexts, stories, world):
            frames = [caption_shape(f.main, 0) for f in w.frames]
            assert ctx == [w.captions[0], frames[0], w.captions[1], frames[1], w.captions[2], frames[2],
                           w.captions[3], frames[3], w.captions[4]]
            assert s.known[chain.DESCRIBED] == s.known["captions_images"]  # it knows what the images tell
    no_shapes = chain.ChainStory(["a."], world[0].images(8), world[0].final, {})
    with pytest.raises(ValueError, match="needs each frame's shape"):
        chain._contexts([no_shapes], chain.DESCRIBED)


def test_probe_fit_stories_come_from_the_lm_stream_and_stop_at_what_the_lm_read():
    from gill_lite.backbones.recipes import standin_recipe
    from gill_lite.config import get_profile

    profile = get_profile("ci")
    read = standin_recipe(profile).lm.n_stories
    fit = chain.probe_fit_stories(profile, 5)
    w = profile.world
    assert [s.captions for s in fit] == [s.captions for s in make_stories(5, w.seed, "lm", w.image_size)]
    assert len(chain.probe_fit_stories(profile, read + 10)) == read


def test_mapper_link_reads_the_nearest_description():
    from gill_fixtures import FakeGenerator
    from gill_lite.world.attributes import all_shapes
    from gill_lite.world.captions import caption_shape

    gen = FakeGenerator(max_length=12)  # room for a whole caption
    space = chain.description_space(gen)
    assert len(space.shapes) == len(all_shapes()) == space.embeddings.shape[0]
    g = torch.Generator().manual_seed(0)
    picked = [all_shapes()[i] for i in torch.randint(0, 216, (20,), generator=g).tolist()]
    embeds = gen.encode_text([caption_shape(s, 0) for s in picked])
    assert space.nearest(embeds + 0.05 * torch.randn(embeds.shape, generator=g)) == picked
    assert space.nearest(torch.randn(embeds.shape, generator=g)) != picked  # noise reads as something else


def test_image_link_carries_the_oracle_ceiling():
    import numpy as np

    stories = chain.chain_stories(make_stories(4, seed=0), 8)
    for s in stories:
        s.known["captions"] = ["kind"]
    hits = {a: np.array([1.0, 0.0, 1.0, 1.0]) for a in ("kind", "colour", "size", "position")}
    oracle = {a: np.ones(4) for a in hits}
    gen = type("Gen", (), {"attributes": {"gill/captions": hits, "sd/oracle": oracle}})()
    links = chain.image_link(gen, stories, settings=("captions", "last_caption"))
    assert set(links) == {"captions"}
    assert links["captions"]["image"]["kind"] == 0.75 and links["captions"]["oracle_image"]["kind"] == 1.0
    assert links["captions"]["image"]["colour"] is None  # not determined by the captions


def test_recentred_states_move_the_stories_mean_onto_the_corpus_mean():
    from gill_lite.model.functional import img_states_batch

    parts = tiny_parts()
    model = GillModel.build(parts, tiny_train_cfg())
    ev = chain.chain_stories(make_stories(6, seed=0), 8)
    stories = [list(s.captions) for s in ev]
    corpus = ["A small red circle sits on the left.", "There is a large blue square at the top.", "A green triangle."]
    moved = chain.recentred_states(model, corpus, stories, stories)
    raw = img_states_batch(model, stories).states
    assert torch.allclose(moved.mean(0), img_states_batch(model, corpus).states.mean(0), atol=1e-5)
    assert torch.allclose(moved - moved.mean(0), raw - raw.mean(0), atol=1e-5)  # one offset for every story
    # the stories' own contexts as the corpus: no offset, so the link is the mapper link as measured
    same = chain.mapper_recentred(model, parts.generator, stories, ev, ev, setting="captions")
    out = chain.measure_chain(model, parts.generator, ev, ev, settings=("captions",), draw=False, progress=False)
    assert same == out["captions"]["mapper"]


def test_restated_captions_keep_the_scene_and_say_the_kind_once():
    from gill_lite.world.attributes import all_shapes
    from gill_lite.world.captions import WHERE, caption_shape

    shapes = list(all_shapes())[:20]
    for n in (0, 3):
        contexts = chain.restated_captions(shapes, n, seed=0)
        for ctx, shape in zip(contexts, shapes):
            assert ctx[0] == caption_shape(shape, 0) and len(ctx) == 1 + n
            for sentence in ctx[1:]:  # each a restatement of this shape, never its kind
                assert shape.kind not in sentence
                fields = {**shape.to_dict(), "where": WHERE[shape.position]}
                assert sentence in [t.format(**fields) for t in chain.RESTATEMENTS.values()]
    assert chain.restated_captions(shapes, 3, seed=0) == chain.restated_captions(shapes, 3, seed=0)


def test_mapper_by_sentences_after_and_without_a_caption():
    parts = tiny_parts()
    model = GillModel.build(parts, tiny_train_cfg())
    by_n = chain.mapper_by_sentences_after(model, parts.generator, max_sentences=2)
    assert sorted(by_n) == [0, 1, 2] and all(0.0 <= v <= 1.0 for accs in by_n.values() for v in accs.values())
    assert set(by_n[0]) == {"kind", "colour", "size", "position"}
    lines = chain.restated_lines(by_n)
    assert len(lines) == 3 * 4 and lines["chain.restated_2.mapper.kind"] == round(by_n[2]["kind"], 4)
    ev = chain.chain_stories(make_stories(6, seed=0), 8)
    dropped = chain.mapper_kind_without_caption(model, parts.generator, ev, drop=1)
    # with caption 1 left out of a 2-caption story the context is the first caption alone: captions_first_1
    short = chain.chain_stories(make_stories(6, seed=0), 8)
    for s in short:
        s.captions = s.captions[:2]
    assert chain.mapper_kind_without_caption(model, parts.generator, short, drop=1) == pytest.approx(
        chain.mapper_kind_by_captions_read(model, parts.generator, short, progress=False)[1])
    assert 0.0 <= dropped <= 1.0
    with pytest.raises(ValueError, match="drop a later one"):
        chain.mapper_kind_without_caption(model, parts.generator, ev, drop=0)
    with pytest.raises(ValueError, match="no caption 5 to leave out"):
        chain.mapper_kind_without_caption(model, parts.generator, ev, drop=5)


def test_mapper_position_by_last_event_splits_the_mapper_link():
    """The split counts the stories whose captions determine the position, each under the event that last set
    it, and its accuracies average back to the mapper link's position after 5 captions."""
    assert chain.last_position_event(["grow", "move_rel", "recolour"]) == "move_rel"
    assert chain.last_position_event(["move_to", "reveal", "shrink"]) == "reveal"
    assert chain.last_position_event(["grow", "recolour"]) == "frame1"
    parts = tiny_parts()
    model = GillModel.build(parts, tiny_train_cfg())
    gen = parts.generator
    ev = chain.chain_stories(make_stories(24, seed=0), 8)
    split = chain.mapper_position_by_last_event(model, gen, ev)
    determined = [s for s in ev if "position" in s.known["captions"]]
    assert sum(n for n, _ in split.values()) == len(determined) > 0
    assert set(split) <= {"frame1", *chain.POSITION_EVENTS}
    nearest = chain._nearest_after(model, chain.description_space(gen), [s.captions for s in determined])
    link = sum(p.position == s.shape.position for p, s in zip(nearest, determined)) / len(determined)
    assert sum(n * acc for n, acc in split.values()) / len(determined) == pytest.approx(link)
    ev[0].events = None  # stories without events (e.g. a VIST file) cannot be split
    with pytest.raises(ValueError, match="events"):
        chain.mapper_position_by_last_event(model, gen, ev)


def test_sentences_after_figure_draws_one_line_per_attribute():
    import matplotlib

    matplotlib.use("Agg")
    from gill_lite.evaluate.figures import sentences_after_figure

    by_n = {n: {"kind": 1.0 - 0.1 * n, "colour": 1.0, "size": 0.9, "position": 0.5} for n in range(4)}
    fig = sentences_after_figure(by_n)
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["kind", "colour", "size", "position"]
    assert list(lines[0].get_ydata()) == pytest.approx([1.0, 0.9, 0.8, 0.7])


def test_describe_with_images_places_each_image_after_its_caption_and_scores_caption_determined_only(monkeypatch):
    stories = chain.chain_stories(make_stories(4, seed=0), 8)
    s = stories[0]
    assert chain.captions_with_images(s, ()) == s.captions
    full = chain.captions_with_images(s, (0, 1, 2, 3))
    assert [type(x) is str for x in full] == [True, False] * 4 + [True]
    assert all((full[2 * i + 1] == s.images[i]).all() for i in range(4))
    one = chain.captions_with_images(s, (1,))
    assert len(one) == 6 and one[:2] == s.captions[:2] and (one[2] == s.images[1]).all()
    seen = []
    truth = [{a: getattr(x.shape, a) for a in ("kind", "colour", "size", "position")} for x in stories]
    monkeypatch.setattr(chain, "describe", lambda model, contexts: seen.extend(contexts) or truth)
    for x in stories:
        x.known["captions"] = ["kind"]
        x.known["captions_images"] = ["kind", "colour"]
    out = chain.describe_with_images(None, stories, (0,))
    assert out["kind"] == 1.0 and out["colour"] is None  # colour only the images determine: not counted
    assert len(seen) == 4 and (seen[0][1] == stories[0].images[0]).all()


def test_captions_with_images_is_the_evaluation_interleave_and_refuses_the_target_frame():
    from gill_lite.evaluate.contexts import build_context

    s = chain.chain_stories(make_stories(1, seed=0), 8)[0]
    full, built = chain.captions_with_images(s, (0, 1, 2, 3)), build_context(s.captions, s.images, "captions_images")
    assert len(full) == len(built) == 9
    assert all((a == b) if isinstance(a, str) else (a == b).all() for a, b in zip(full, built))
    with pytest.raises(ValueError, match="context frames"):
        chain.captions_with_images(s, (4,))
