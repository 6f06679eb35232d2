"""GILL's training loop: schedule, batches, caches, resume bit for bit, finished stages found again."""
import json

import pytest
import torch

from gill_fixtures import tiny_parts
from gill_lite.config import get_profile
from gill_lite.model import GillModel
from gill_lite.train import loop, pairs
from gill_lite.train.caches import image_features
from gill_lite.train.data import CaptionSet

torch.set_num_threads(1)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("GILL_RUNS_DIR", str(tmp_path))
    return tmp_path


def small_profile(**train):
    base = {"steps": 8, "batch_size": 8, "checkpoint_every": 4, "mapper_d_model": 16, "mapper_ffn": 32,
            "retrieval_dim": 8, "warmup_steps": 2, "decay_every": 3}
    return get_profile("ci", train={**base, **train}, world={"n_train": 40})


def test_lr_schedule():
    cfg = small_profile(warmup_steps=4, decay_every=10, decay_factor=0.1).train
    assert [loop.lr_factor(s, cfg) for s in (0, 3, 4, 13, 14, 24)] == pytest.approx([0.25, 1.0, 1.0, 1.0, 0.1, 0.01])


def test_stage_decay_interval_overrides_and_enters_its_fingerprint():
    cfg = small_profile(warmup_steps=4, decay_every=10, stage_decay_every=(("captioning", 20),)).train
    assert loop.lr_factor(14, cfg, "captioning") == pytest.approx(1.0)
    assert loop.lr_factor(24, cfg, "captioning") == pytest.approx(0.1)
    assert loop.lr_factor(14, cfg, "generation") == pytest.approx(0.1)  # no override: the shared interval
    base, longer = small_profile(warmup_steps=4, decay_every=10), small_profile(
        warmup_steps=4, decay_every=10, stage_decay_every=(("captioning", 20),))
    names = {"lm": "a", "image_encoder": "b", "generator": "c"}
    assert loop.fingerprint(base, "captioning", names) != loop.fingerprint(longer, "captioning", names)
    assert loop.fingerprint(base, "img_tokens", names) == loop.fingerprint(longer, "img_tokens", names)


@pytest.mark.parametrize("n_matchings", [0, 3])
def test_batches_cover_each_epoch_once(n_matchings):
    rows = torch.cat([pairs.batch_indices(10, 4, s, seed=3, n_matchings=n_matchings) for s in range(5)])
    assert sorted(rows[:10].tolist()) == list(range(10)) and sorted(rows[10:20].tolist()) == list(range(10))
    assert torch.equal(pairs.batch_indices(10, 4, 2, 3), pairs.batch_indices(10, 4, 2, 3))


@pytest.mark.parametrize("n", [40, 41])
def test_pairs_come_from_fixed_matchings(n):
    """With K matchings a joined pair is always two partners of matching (epoch % K), and the roles say so."""
    seen = set()
    for step in range(12):
        plan = pairs.plan_batch(n, 8, step, seed=5, concat_fraction=0.5, n_matchings=3)
        assert sorted(i for g in plan.groups for i in g) == list(range(8))
        for g in plan.groups:
            if len(g) == 2:
                a, b = (plan.rows[i] for i in g)
                k = plan.roles[g[1]]
                assert pairs.matching(n, k, 5)[b] == a and plan.roles[g[0]] == pairs.ALONE
                seen.add(k)
        assert sum(len(g) == 2 for g in plan.groups) <= 2  # round(0.5 * 8) = 4 slots: at most two pairs
    assert seen == {0, 1, 2}
    left = pairs.matching(n, 0, 5)
    has = left >= 0
    assert (left[left[has]] == torch.arange(n)[has]).all()  # a partner's partner is you
    assert int((left < 0).sum()) == n % 2


def test_pairs_never_straddle_processes():
    full = pairs.plan_batch(40, 8, 3, seed=1, concat_fraction=0.5, n_matchings=2)
    halves = [pairs.plan_batch(40, 8, 3, seed=1, concat_fraction=0.5, n_matchings=2, rank=r, world=2) for r in (0, 1)]
    assert halves[0].rows + halves[1].rows == full.rows
    assert [len(g) for h in halves for g in h.groups] == [len(g) for g in full.groups]


def test_feature_cache_is_computed_once(runs):
    calls = []
    parts = tiny_parts()
    data = CaptionSet("toy", ["a", "b", "c"], ["x", "y", "z"],
                      lambda idx: torch.full((len(idx), 8, 8, 3), 100, dtype=torch.uint8).numpy())
    enc = parts.image_encoder
    orig = enc.encode
    enc.encode = lambda im: (calls.append(len(im)), orig(im))[1]
    a = image_features(data, enc, runs / "cache", batch_size=2)
    b = image_features(data, enc, runs / "cache", batch_size=2)
    assert calls == [2, 1] and torch.equal(a[[0, 2]], b[[0, 2]]) and a[[1]].shape == (1, 24)
    shards = image_features(data, enc, runs / "cache2", batch_size=2, shard_size=2, in_memory_bytes=0)
    assert torch.allclose(shards[[2, 0, 1]], a[[2, 0, 1]])


def test_img_states_cache_replaces_the_lm_pass(runs):
    parts = tiny_parts()
    prof = small_profile(steps=6)
    assert prof.train.pair_matchings == 2 and prof.train.concat_fraction == 0.5
    assert loop.states_cacheable("generation", prof.train) and loop.states_cacheable("retrieval", prof.train)
    assert not loop.states_cacheable("img_tokens", prof.train) and not loop.states_cacheable("joint", prof.train)
    random_pairs = small_profile(pair_matchings=0).train  # new partners every epoch: nothing to cache
    assert not loop.states_cacheable("generation", random_pairs)
    logs, calls = {}, {}
    for use_cache in (True, False):
        model = GillModel.build(parts, prof.train)
        n = [0]
        forward = model.lm_forward
        model.lm_forward = lambda *a, **k: (n.__setitem__(0, n[0] + 1), forward(*a, **k))[1]
        loop.train(model, "generation", parts, prof, runs / f"g{use_cache}", use_cache=use_cache, progress=False)
        logs[use_cache], calls[use_cache] = [r["gen"] for r in loop.read_log(runs / f"g{use_cache}")], n[0]
    # one cache pass over the 40 captions alone and one per matching (as second of a pair) instead of one LM
    # pass per step; with pairs joined in every batch, the cached losses equal the uncached ones
    assert calls == {True: 3, False: 6}
    assert logs[True] == pytest.approx(logs[False], rel=1e-4)
    files = sorted(p.name for p in (runs / "ci" / "cache").glob("*imgstates*"))
    assert len(files) == 1
    # other [IMG] rows, other states: a new cache file, never the stale one
    model = GillModel.build(parts, prof.train)
    with torch.no_grad():
        model.img_tokens.rows.add_(1.0)
    loop.train(model, "generation", parts, prof, runs / "g2", progress=False)
    assert len(list((runs / "ci" / "cache").glob("*imgstates*"))) == 2


def test_resume_is_bit_for_bit(runs):
    parts = tiny_parts()
    prof = small_profile()
    straight = GillModel.build(parts, prof.train)
    loop.train(straight, "joint", parts, prof, runs / "a", progress=False, fingerprint_="x")
    first = GillModel.build(parts, prof.train)
    loop.train(first, "joint", parts, prof, runs / "b", stop_after=4, progress=False, fingerprint_="x")
    assert [r["step"] for r in loop.read_log(runs / "b")] == [0, 1, 2, 3]
    resumed = GillModel.build(parts, prof.train)  # a fresh process would rebuild from scratch
    summary = loop.train(resumed, "joint", parts, prof, runs / "b", progress=False, fingerprint_="x")
    assert summary["finished"]
    log_a, log_b = loop.read_log(runs / "a"), loop.read_log(runs / "b")
    assert [r["step"] for r in log_b] == list(range(8))
    assert [r["loss"] for r in log_a] == [r["loss"] for r in log_b]
    sa, sb = straight.trainable_state_dict(), resumed.trainable_state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_stage_finds_finished_checkpoint(runs, capsys):
    parts = tiny_parts()
    prof = small_profile(steps=3)
    model = loop.train_stage(prof, "img_tokens", parts, progress=False)
    config = json.loads((loop.stage_dir(prof, "img_tokens") / "gill_config.json").read_text())
    assert config["run"]["finished"] and config["frozen"]["lm"] == "fake-opt"
    assert (loop.stage_dir(prof, "captioning") / "trainable.safetensors").exists()  # the stage it starts from
    capsys.readouterr()
    again = loop.train_stage(prof, "img_tokens", parts, progress=False)
    assert "Found finished checkpoint" in capsys.readouterr().out
    assert torch.equal(again.img_tokens.rows, model.img_tokens.rows)
    # the captioning stage's prefix is carried into the img_tokens checkpoint unchanged
    cap = GillModel.from_trainable(loop.stage_dir(prof, "captioning"), parts)
    assert torch.equal(cap.prefix.proj.weight, again.prefix.proj.weight)
    # another recipe is another configuration: trained in a folder of its own, the finished one kept
    first = loop.stage_dir(prof, "captioning")
    loop.train_stage(small_profile(steps=4), "captioning", parts, progress=False)
    assert loop.stage_dir(prof, "captioning") != first and (first / "gill_config.json").exists()
    capsys.readouterr()
    loop.train_stage(prof, "captioning", parts, progress=False)
    assert "Found finished checkpoint" in capsys.readouterr().out and loop.stage_dir(prof, "captioning") == first


def test_a_missing_stage_is_refused_not_trained_when_asked(runs):
    """A measuring script pointed at a run folder without this configuration's stage gets a clear error that
    names the stage, and nothing is trained or written there."""
    parts = tiny_parts()
    prof = small_profile(steps=3)
    with pytest.raises(FileNotFoundError, match="no finished captioning stage"):
        loop.load_gill(prof, parts, "captioning", train_missing=False)
    assert not any(runs.rglob("*.safetensors")) and not any(runs.rglob("*.lock"))
    trained = loop.train_stage(prof, "captioning", parts, progress=False)
    found = loop.load_gill(prof, parts, "captioning", train_missing=False)  # finished: found as before
    assert torch.equal(found.prefix.proj.weight, trained.prefix.proj.weight)
    with pytest.raises(FileNotFoundError, match="other configurations there"):
        loop.load_gill(small_profile(steps=4), parts, "captioning", train_missing=False)


def test_the_pipeline_passes_the_refusal_on(runs, monkeypatch):
    """`GillPipeline.for_profile(train_missing=False)` (bench/vist.py --no-train) refuses as `load_gill` does."""
    import gill_lite.backbones as backbones
    from gill_lite.inference import GillPipeline

    parts = tiny_parts()
    parts.to = lambda device: parts
    monkeypatch.setattr(backbones, "load_frozen_parts", lambda profile: parts)
    with pytest.raises(FileNotFoundError, match="no finished"):
        GillPipeline.for_profile(small_profile(steps=3), with_decision=False, train_missing=False)
    assert not any(runs.rglob("*.safetensors"))


def test_img_tokens_stage_trains_the_rows_with_the_losses_that_read_their_states(runs):
    """Stage 02's [IMG] rows learn from the generation and retrieval losses, which read the [IMG] states, beside
    the prediction loss, as in the paper; the mapper and heads learn with them, the prefix stays as captioning left it."""
    parts = tiny_parts()
    prof = small_profile(steps=4)
    model = loop.train_stage(prof, "img_tokens", parts, progress=False)
    before = GillModel.from_trainable(loop.stage_dir(prof, "captioning"), parts)
    assert not torch.equal(before.img_tokens.rows, model.img_tokens.rows)
    assert not torch.equal(before.retrieval.text.weight, model.retrieval.text.weight)
    assert not torch.equal(before.retrieval.image.weight, model.retrieval.image.weight)
    assert not all(torch.equal(a, b) for a, b in zip(before.mapper.parameters(), model.mapper.parameters()))
    assert torch.equal(before.prefix.proj.weight, model.prefix.proj.weight)
    assert set(loop.read_log(loop.stage_dir(prof, "img_tokens"))[0]) >= {"img", "gen", "ret"}


def test_a_stages_losses_and_parts_enter_its_fingerprint(monkeypatch):
    """A finished stage trained on other losses (or parts) is another configuration, not one to load."""
    prof, names = small_profile(), {"lm": "a", "image_encoder": "b", "generator": "c"}
    base = {s: loop.stage_fingerprint(prof, s, names) for s in loop.STAGES}
    monkeypatch.setitem(loop.STAGE_LOSSES, "img_tokens", ("img",))
    fewer_losses = {s: loop.stage_fingerprint(prof, s, names) for s in loop.STAGES}
    assert fewer_losses["captioning"] == base["captioning"]
    assert all(fewer_losses[s] != base[s] for s in ("img_tokens", "generation", "retrieval"))  # chained
    monkeypatch.setitem(loop.STAGE_PARTS, "retrieval", ("retrieval", "mapper"))
    assert loop.stage_fingerprint(prof, "retrieval", names) != fewer_losses["retrieval"]


def test_a_stage_wanted_twice_at_once_is_trained_once(runs, monkeypatch):
    """Two callers (a notebook and a bench) wanting the same unfinished stage: the second waits for the first's
    checkpoint and loads it, instead of training the stage again and overwriting it."""
    import threading
    import time

    parts = tiny_parts()
    prof = small_profile(steps=2)
    loop.train_stage(prof, "captioning", parts, progress=False)  # the stage before, finished
    real_train, entered, release, calls = loop.train, threading.Event(), threading.Event(), []

    def slow_train(*args, **kwargs):
        calls.append(threading.current_thread().name)
        entered.set()
        assert release.wait(30), "the test never released the first training"
        return real_train(*args, **kwargs)

    monkeypatch.setattr(loop, "train", slow_train)
    results = {}

    def want(name):
        results[name] = loop.train_stage(prof, "img_tokens", parts, progress=False)

    first = threading.Thread(target=want, args=("first",), name="first")
    first.start()
    assert entered.wait(30)
    second = threading.Thread(target=want, args=("second",), name="second")
    second.start()
    time.sleep(1.0)  # time for the second to reach training, were it not waiting
    release.set()
    first.join(60)
    second.join(60)
    assert calls == ["first"]
    assert torch.equal(results["first"].img_tokens.rows, results["second"].img_tokens.rows)


def test_a_moved_run_finds_every_stage_finished(runs, monkeypatch, capsys):
    """Copying runs/ elsewhere (a moved clone, a shared GILL_RUNS_DIR) keeps every finished stage."""
    import shutil

    parts = tiny_parts()
    prof = small_profile(steps=2)
    loop.train_stage(prof, "retrieval", parts, progress=False)
    moved = runs.parent / (runs.name + "-moved")
    shutil.copytree(runs, moved)
    monkeypatch.setenv("GILL_RUNS_DIR", str(moved))
    capsys.readouterr()
    loop.train_stage(prof, "retrieval", parts, progress=False)
    out = capsys.readouterr().out
    assert "Found finished checkpoint" in out and "Trained" not in out
    assert str(moved) in out


def test_losses_fall(runs):
    parts = tiny_parts()
    prof = small_profile(steps=40, lr=3e-3)
    model = GillModel.build(parts, prof.train)
    loop.train(model, "generation", parts, prof, runs / "g", progress=False)
    log = loop.read_log(runs / "g")
    assert sum(r["gen"] for r in log[-5:]) < sum(r["gen"] for r in log[:5])


def test_joint_run_can_start_from_the_staged_chain(runs):
    parts = tiny_parts()
    staged = small_profile(steps=2, joint_from="retrieval")
    names = {"lm": "fake-opt", "image_encoder": "fake-clip", "generator": "fake-sd"}
    assert loop.previous_stage(staged, "joint") == "retrieval" and loop.previous_stage(small_profile(), "joint") is None
    assert loop.stage_fingerprint(staged, "joint", names) != loop.stage_fingerprint(small_profile(steps=2), "joint", names)
    # the staged stages themselves do not depend on where the joint run starts
    assert loop.stage_fingerprint(staged, "retrieval", names) == loop.stage_fingerprint(small_profile(steps=2), "retrieval", names)
    model = loop.train_stage(staged, "joint", parts, progress=False)
    assert loop.stage_dir(staged, "retrieval").exists()  # trained first, then fine-tuned jointly
    before = GillModel.from_trainable(loop.stage_dir(staged, "retrieval"), parts)
    assert not torch.equal(before.img_tokens.rows, model.img_tokens.rows)  # the rows learn in the joint run
    with pytest.raises(ValueError):
        loop.previous_stage(small_profile(joint_from="joint"), "joint")


def test_paper_notebooks_load_the_joint_run_not_four_stages(monkeypatch):
    assert not loop.trains_staged_chain(get_profile("paper").train)
    assert loop.trains_staged_chain(get_profile("tiny").train) and loop.trains_staged_chain(get_profile("ci").train)
    calls = []
    monkeypatch.setattr(loop, "load_gill", lambda p, parts=None, stage=None: calls.append(p.train.final_stage) or "gill")
    monkeypatch.setattr(loop, "train_stage", lambda *a, **k: pytest.fail("a staged stage was trained"))
    assert loop.notebook_stage(small_profile(final_stage="joint", joint_from=None), "captioning") == ("gill", "joint")
    assert calls == ["joint"]


@pytest.mark.parametrize("caption_pairs", [True, False])
def test_caption_pairs_setting_joins_or_separates_only_the_captioning_loss(monkeypatch, caption_pairs):
    """``caption_pairs`` False (tiny, ci): the captioning loss reads every example alone, the [IMG] losses still
    read the batch's pairs; True (paper, published): both read them. Only the captioning stages' fingerprints
    move with it."""
    from gill_lite.train import steps

    parts = tiny_parts()
    prof = small_profile(caption_pairs=caption_pairs)
    model = GillModel.build(parts, prof.train)
    seen = {}
    real_img, real_cap = steps.img_forward, steps.caption_inputs

    def img_forward(m, texts, *a, **k):
        seen["img"] = k["groups"]
        return real_img(m, texts, *a, **k)

    def caption_inputs(m, prefix, texts, *a, **k):
        seen["cap"] = k["groups"]
        return real_cap(m, prefix, texts, *a, **k)

    monkeypatch.setattr(steps, "img_forward", img_forward)
    monkeypatch.setattr(steps, "caption_inputs", caption_inputs)
    captions = ["a red circle.", "a blue square.", "a green triangle."]
    batch = {"captions": captions, "text_targets": parts.generator.encode_text(captions), "groups": [(0, 2), (1,)],
             "image_features": torch.randn(3, parts.image_encoder.hidden_size)}
    losses = steps.compute_losses(model, batch, "joint", prof.train)
    assert all(torch.isfinite(v) for v in losses.values())
    assert seen["img"] == [(0, 2), (1,)]
    assert seen["cap"] == ([(0, 2), (1,)] if caption_pairs else [(0,), (1,), (2,)])
    names = {"lm": "a", "image_encoder": "b", "generator": "c"}
    other = small_profile(caption_pairs=not caption_pairs)
    assert loop.fingerprint(prof, "captioning", names) != loop.fingerprint(other, "captioning", names)
    assert loop.fingerprint(prof, "retrieval", names) == loop.fingerprint(other, "retrieval", names)


def test_img_side_reads_img_texts_and_captioning_reads_captions(monkeypatch):
    """``CaptionSet.img_texts`` feed the [IMG] losses (and their cache's name); captioning reads the captions."""
    from gill_lite.train import caches, steps

    parts = tiny_parts()
    prof = small_profile()
    model = GillModel.build(parts, prof.train)
    seen = {}
    real_img, real_cap = steps.img_forward, steps.caption_inputs

    def img_forward(m, texts, *a, **k):
        seen["img"] = list(texts)
        return real_img(m, texts, *a, **k)

    def caption_inputs(m, prefix, texts, *a, **k):
        seen["cap"] = list(texts)
        return real_cap(m, prefix, texts, *a, **k)

    monkeypatch.setattr(steps, "img_forward", img_forward)
    monkeypatch.setattr(steps, "caption_inputs", caption_inputs)
    captions, styled = ["a red circle.", "a blue square."], ["A circle. It is red.", "A square. It is blue."]
    batch = {"captions": captions, "img_texts": styled, "text_targets": parts.generator.encode_text(captions),
             "image_features": torch.randn(2, parts.image_encoder.hidden_size)}
    steps.compute_losses(model, batch, "joint", prof.train)
    assert seen == {"img": styled, "cap": captions}

    def dataset(img_texts):
        return CaptionSet("d", ["0", "1"], captions, lambda idx: None, img_texts=img_texts)
    assert dataset(None).img_texts == captions
    with pytest.raises(ValueError, match="img_texts"):
        dataset(styled[:1])
    names = set()
    monkeypatch.setattr(caches, "cached_features", lambda ds, encode, kind, name, *a, **k: names.add(name))
    for texts in (None, styled):
        caches.img_states(dataset(texts), model, "/nonexistent", 16)
    assert len(names) == 2  # restyled [IMG] texts never read a cache of the plain captions' states


def test_bos_before_images_enters_every_fingerprint_only_when_on():
    names = {"lm": "a", "image_encoder": "b", "generator": "c"}
    plain, first = small_profile(bos_before_images=False), small_profile(bos_before_images=True)
    for stage in ("captioning", "img_tokens", "joint"):
        assert loop.fingerprint(plain, stage, names) != loop.fingerprint(first, stage, names)


def test_stages_train_with_deterministic_kernels_and_restore_the_setting(runs, monkeypatch):
    """Two CPU threads made stage 02 differ run to run (`loop.deterministic_kernels`); the loop trains with
    torch's deterministic kernels and leaves the caller's setting as it found it."""
    seen = []
    real = loop.compute_losses
    monkeypatch.setattr(loop, "compute_losses",
                        lambda *a, **k: seen.append(torch.are_deterministic_algorithms_enabled()) or real(*a, **k))
    parts = tiny_parts()
    prof = small_profile(steps=2)
    assert not torch.are_deterministic_algorithms_enabled()
    loop.train(GillModel.build(parts, prof.train), "joint", parts, prof, runs / "a", progress=False)
    assert seen == [True, True] and not torch.are_deterministic_algorithms_enabled()

