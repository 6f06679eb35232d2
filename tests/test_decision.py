"""The decision set: judges, agreement metrics, the confidence rule as used here, and the classifier."""
import numpy as np
import pytest
import torch

from gill_lite.config import get_profile
from gill_lite.decision import classifier, judges
from gill_lite.decision.metrics import confusion_matrix, f1_per_label, fleiss_kappa, macro_f1, pairwise_agreement


# ------------------------------------------------------------------------------------------------- metrics
def test_fleiss_kappa_matches_the_textbook_example():
    # Fleiss (1971) as reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories, kappa = 0.210.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    cats = list("abcde")
    votes = [[c for c, n in zip(cats, row) for _ in range(n)] for row in table]
    assert fleiss_kappa(votes, cats) == pytest.approx(0.210, abs=1e-3)
    assert fleiss_kappa([["gen"] * 5, ["ret"] * 5], judges.VOTES) == pytest.approx(1.0)


def test_macro_f1_and_confusion_by_hand():
    truth = ["gen", "gen", "gen", "ret"]
    pred = ["gen", "ret", "same", "ret"]  # "same" is a miss for gen, a false positive for nobody
    assert f1_per_label(truth, pred, judges.LABELS) == pytest.approx({"gen": 2 / 4, "ret": 2 / 3})
    assert macro_f1(truth, pred, judges.LABELS) == pytest.approx((0.5 + 2 / 3) / 2)
    assert confusion_matrix(truth, pred, judges.LABELS).tolist() == [[1, 1], [0, 1]]
    assert pairwise_agreement([["gen", "gen", "ret"]]) == pytest.approx(1 / 3)


# --------------------------------------------------------------------------------------- confidence rule use
def test_confident_labels_use_the_paper_rule_on_every_kind_of_split():
    votes = [
        ["gen"] * 5,                                   # unanimous
        ["ret", "ret", "ret", "ret", "gen"],           # 4 vs 1
        ["gen", "gen", "gen", "same", "same"],         # 3 vs 0 opposing
        ["ret", "ret", "ret", "gen", "same"],          # 3 vs 1 opposing
        ["gen", "gen", "gen", "ret", "ret"],           # 3 vs 2: dropped
        ["gen", "gen", "ret", "ret", "same"],          # 2-2 tie: dropped
        ["same", "same", "same", "gen", "ret"],        # "same" majority: dropped
        ["same"] * 5,                                  # all same: dropped
        ["gen", "gen", "same", "same", "ret"],         # 2 vs 1: dropped
    ]
    labels = judges.confident_labels(votes)
    assert labels == ["gen", "ret", "gen", "ret", None, None, None, None, None]
    assert judges.label_counts(labels) == {"gen": 2, "ret": 2, "dropped": 5}


# ------------------------------------------------------------------------------------------------- judges
def _evidence(gen_match, ret_match, gen_clip=None, ret_clip=None):
    n = len(gen_match)
    return {"gen_match": np.array(gen_match, float), "ret_match": np.array(ret_match, float),
            "gen_clip": np.array(gen_clip if gen_clip is not None else [np.nan] * n, float),
            "ret_clip": np.array(ret_clip if ret_clip is not None else [np.nan] * n, float)}


def test_noiseless_judges_pick_the_image_with_more_right_attributes():
    ev = _evidence([1.0, 0.5, 0.75], [0.5, 1.0, 0.75])
    js = judges.make_judges(5, noise=0.0, tie=0.05, lapse=0.0)
    votes = judges.simulate_votes(ev, js)
    assert votes == [["gen"] * 5, ["ret"] * 5, ["same"] * 5]


def test_clip_breaks_ties_between_equally_correct_images():
    ev = _evidence([1.0, 1.0], [1.0, 1.0], gen_clip=[0.9, 0.1], ret_clip=[0.1, 0.9])
    votes = judges.simulate_votes(ev, judges.make_judges(5, noise=0.0, tie=0.01, lapse=0.0, clip_weight=0.5))
    assert votes == [["gen"] * 5, ["ret"] * 5]


def test_noisy_judges_disagree_reproducibly():
    rng = np.random.default_rng(0)
    ev = _evidence(rng.integers(0, 5, 400) / 4, rng.integers(0, 5, 400) / 4)
    js = judges.make_judges(5, noise=0.2, tie=0.1, lapse=0.05, seed=3)
    votes = judges.simulate_votes(ev, js, seed=3)
    assert votes == judges.simulate_votes(ev, judges.make_judges(5, noise=0.2, tie=0.1, lapse=0.05, seed=3), seed=3)
    assert votes != judges.simulate_votes(ev, js, seed=4)
    unanimous = sum(len(set(row)) == 1 for row in votes)
    assert 0 < unanimous < len(votes)
    report = judges.agreement_report(votes)
    assert 0.2 < report["fleiss_kappa"] < 0.95
    assert len(report["loo_f1_per_judge"]) == 5 and 0 < report["loo_f1"] < 1
    assert 0.5 < report["ceiling_f1"] <= 1
    assert sum(report["vote_shares"].values()) == pytest.approx(1.0)


def test_more_noise_means_fewer_confident_prompts():
    rng = np.random.default_rng(1)
    gen = rng.integers(2, 5, 500) / 4
    ev = _evidence(gen, np.where(rng.random(500) < 0.5, gen - 0.25, gen + 0.25))  # always one attribute apart
    kept = []
    for noise in (0.05, 0.3, 0.8):
        votes = judges.simulate_votes(ev, judges.make_judges(5, noise=noise, tie=0.1, lapse=0.05))
        kept.append(sum(lab is not None for lab in judges.confident_labels(votes)))
    assert kept[0] > kept[1] > kept[2]


def test_judges_from_profile_config():
    js = judges.judges_from_config(get_profile("ci").decision)
    assert len(js) == 5 and len({j.noise for j in js}) == 5


def test_attribute_match_counts_attributes():
    from gill_lite.world.attributes import Shape

    truth = Shape("circle", "red", "small", "top left")
    assert judges.attribute_match(truth, truth) == 1.0
    assert judges.attribute_match(truth.replace(colour="blue", size="large"), truth) == 0.5
    assert judges.attribute_match(None, truth) == 0.0


# ------------------------------------------------------------------------------------------------ classifier
def _toy(n=300, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    direction = torch.randn(dim, generator=g)
    x = torch.randn(n, dim, generator=g) + 3.0 * (2 * y[:, None].float() - 1) * direction / direction.norm()
    return x, [judges.LABELS[i] for i in y.tolist()]


def test_decision_head_learns_a_separable_toy_set():
    from gill_lite.model.decision import DecisionHead

    x, labels = _toy()
    head = DecisionHead(16, retrieval_score=False)
    history = classifier.train_decision_head(head, x[:200], labels[:200], steps=300, lr=1e-2, progress=False,
                                             x_val=x[200:], labels_val=labels[200:])
    result = classifier.evaluate(head, x[200:], labels[200:])
    assert result["macro_f1"] > 0.95
    assert history["loss"][-1] < history["loss"][0]
    assert sum(map(sum, result["confusion"])) == 100


def test_the_top_retrieval_score_carries_what_the_img0_state_lacks():
    """Labels that depend on the retrieval score alone: the published head (state + score) learns them, a head
    of the [IMG0] state alone cannot."""
    from gill_lite.model.decision import DecisionHead, decision_features

    g = torch.Generator().manual_seed(0)
    states = torch.randn(400, 16, generator=g)
    scores = torch.rand(400, generator=g) * 10  # logit_scale x cosine
    labels = ["ret" if s > 5 else "gen" for s in scores.tolist()]
    x = decision_features(states, scores)
    assert x.shape == (400, 17) and torch.equal(x[:, -1], scores)
    f1 = {}
    for name, feats, score in (("with_score", x, True), ("img0_only", states, False)):
        head = DecisionHead(16, retrieval_score=score)
        classifier.train_decision_head(head, feats[:300], labels[:300], steps=300, lr=1e-2, progress=False,
                                       standardize=True)
        f1[name] = classifier.evaluate(head, feats[300:], labels[300:])["macro_f1"]
    assert f1["with_score"] > 0.9 and f1["img0_only"] < 0.7, f1
    with pytest.raises(ValueError, match="takes 17 features"):
        DecisionHead(16)(states)
    with pytest.raises(ValueError, match="retrieval scores"):
        decision_features(states, scores[:3])


def test_a_decision_head_of_another_shape_is_refused(tmp_path):
    from gill_lite.model import CheckpointMismatchError
    from gill_lite.model.decision import DecisionHead, load_decision_head, save_decision_head

    path = tmp_path / "head.safetensors"
    save_decision_head(DecisionHead(16, retrieval_score=False), path, {})
    with pytest.raises(CheckpointMismatchError, match="trained again"):
        load_decision_head(DecisionHead(16), path)
    assert load_decision_head(DecisionHead(16, retrieval_score=False), path) == {}


def test_class_ids_agree_with_the_model():
    from gill_lite.model import decision

    assert judges.LABELS[decision.GENERATE] == "gen" and judges.LABELS[decision.RETRIEVE] == "ret"


def test_fit_decision_trains_saves_then_finds_the_checkpoint(tmp_path, monkeypatch):
    from gill_lite.model.decision import DecisionHead

    monkeypatch.setenv("GILL_RUNS_DIR", str(tmp_path))
    profile = get_profile("ci", decision={"n_train": 200, "steps": 200, "lr": 1e-2})
    x, labels = _toy()
    first = classifier.fit_decision(profile, DecisionHead(16, retrieval_score=False), x, labels, progress=False)
    assert not first.loaded and first.val["macro_f1"] > 0.95 and first.n_train == 200 and first.n_val == 100
    assert first.path == tmp_path / "ci" / "gill" / "decision" / classifier.CHECKPOINT and first.path.exists()
    again = classifier.fit_decision(profile, DecisionHead(16, retrieval_score=False), x, labels, progress=False)
    assert again.loaded and again.val == first.val
    # other data: the old checkpoint does not count
    other = classifier.fit_decision(profile, DecisionHead(16, retrieval_score=False), x, labels[::-1], progress=False)
    assert not other.loaded
    # and inference can attach the saved head to a model
    head = DecisionHead(16, retrieval_score=False)
    assert classifier.load_trained_decision(profile, head)


def test_fit_img0_only_trains_once_per_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GILL_RUNS_DIR", str(tmp_path))
    profile = get_profile("ci", decision={"n_train": 200, "steps": 200, "lr": 1e-2})
    x, labels = _toy()
    trained = []
    real = classifier.train_decision_head
    monkeypatch.setattr(classifier, "train_decision_head", lambda *a, **k: trained.append(1) or real(*a, **k))
    first = classifier.fit_img0_only(profile, x, labels)
    assert trained == [1] and first["macro_f1"] > 0.95
    assert (tmp_path / "ci" / "gill" / "decision" / classifier.IMG0_ONLY_FILE).exists()
    assert classifier.fit_img0_only(profile, x, labels) == first and trained == [1]  # read back, not retrained
    classifier.fit_img0_only(profile, x, labels[::-1])  # other labels: trained again
    classifier.fit_img0_only(profile, x, labels, retrain=True)
    assert trained == [1, 1, 1]
    with pytest.raises(ValueError, match="labels"):
        classifier.fit_img0_only(profile, x[:10], labels)


def test_few_examples_keep_a_validation_part():
    train, val = classifier.split_train_val(30, 600)
    assert len(train) == 20 and len(val) == 10
    with pytest.raises(ValueError):
        classifier.split_train_val(1, 600)
    with pytest.raises(ValueError):
        classifier.encode_labels(["gen", "same"])


# ------------------------------------------------------------------------------------------ the real data path
def test_published_format_fixture_loads_with_votes_and_labels():
    from gill_lite.config import REPO_ROOT
    from gill_lite.decision.data import load_decision_tsv

    prompts, votes = load_decision_tsv(REPO_ROOT / "data" / "fixtures" / "decisions" / "decisions.tsv")
    assert len(prompts) == len(votes) == 10 and all(len(v) == 5 for v in votes)
    assert prompts[0].text == "A drawing of a blue circle, small, in the middle." and prompts[0].category == "novel"
    assert prompts[0].shape is not None and prompts[0].shape.kind == "circle"
    labels = judges.confident_labels(votes)
    assert labels[:4] == ["gen", "ret", "gen", "ret"]
    report = judges.agreement_report(votes, labels)
    assert -1 <= report["fleiss_kappa"] <= 1


def test_partiprompts_rows_without_shapes(tmp_path):
    from gill_lite.data import DataFormatError
    from gill_lite.decision.data import load_decision_tsv

    path = tmp_path / "parti.tsv"
    path.write_text("Prompt\tCategory\tChallenge\tNote\tDecisions\n"
                    "bond\tAbstract\tBasic\tBiology-inspired concepts with multiple meanings\tret,gen,gen,ret,same\n"
                    "a red cube\tIllustrations\tBasic\t\tgen,gen,gen,same,same\n")
    prompts, votes = load_decision_tsv(path)
    assert [p.shape for p in prompts] == [None, None] and [p.category for p in prompts] == ["Abstract", "Illustrations"]
    assert judges.confident_labels(votes) == [None, "gen"]
    from gill_lite.config import REPO_ROOT

    with pytest.raises(DataFormatError):
        load_decision_tsv(REPO_ROOT / "data" / "fixtures" / "decisions" / "decisions_bad.tsv")


def test_shapestories_prompts_come_from_the_world():
    from gill_lite.decision.data import decision_prompts

    prompts, votes = decision_prompts(get_profile("ci"))
    assert len(prompts) == 160 and votes is None
    assert {p.category for p in prompts} == {"corpus", "novel"}


def test_a_frozen_head_still_trains_and_stays_frozen():
    from gill_lite.model.decision import DecisionHead

    x, labels = _toy()
    head = DecisionHead(16, retrieval_score=False).requires_grad_(False)  # as a loaded GillModel may hand it over
    with torch.no_grad():  # and even when called under no_grad
        classifier.train_decision_head(head, x[:200], labels[:200], steps=200, lr=1e-2, progress=False)
    assert classifier.evaluate(head, x[200:], labels[200:])["macro_f1"] > 0.95
    assert not any(p.requires_grad for p in head.parameters())


def test_decision_plots_draw():
    from gill_lite import figures

    fig = figures.confusion_plot([[3, 1], [0, 5]], judges.LABELS)
    assert [t.get_text() for t in fig.axes[0].texts] == ["3", "1", "0", "5"]
    fig = figures.decision_training_plot({"step": [0, 10], "train_f1": [0.5, 0.9], "val_f1": [0.4, 0.8]}, ceiling=0.9)
    assert len(fig.axes[0].lines) == 4  # train, val, our ceiling, the paper's
    fig = figures.label_counts_plot({"gen": 3, "ret": 2, "dropped": 1}, {"gen": 592, "ret": 319, "dropped": 721})
    assert len(fig.axes[0].patches) == 6


def test_standardised_training_folds_back_into_a_plain_head():
    from gill_lite.model.decision import DecisionHead

    x, labels = _toy()
    x = x * 0.1 + 15.0  # a large common offset, small spread: like real LM states
    head = DecisionHead(16, retrieval_score=False)
    classifier.train_decision_head(head, x[:200], labels[:200], steps=300, lr=1e-2, progress=False, standardize=True)
    assert isinstance(head.fc, torch.nn.Linear)  # still Dropout + Linear, reading raw states
    assert classifier.evaluate(head, x[200:], labels[200:])["macro_f1"] > 0.95
    # folding is exact: the folded head on x equals the unfolded head on the standardised x
    mean, scale = x[:200].mean(0), x[:200].std(0)
    w, b = head.fc.weight.detach().clone(), head.fc.bias.detach().clone()
    unfolded = (w * scale) @ ((x[200:] - mean) / scale).T + (b + (w * scale) @ (mean / scale))[:, None]
    assert torch.allclose(head.eval()(x[200:]), unfolded.T, atol=1e-4)
    with pytest.raises(ValueError):
        classifier.fold_standardization(torch.nn.Sequential(torch.nn.Linear(16, 4), torch.nn.Linear(4, 2)),
                                        torch.zeros(16), torch.ones(16))


def test_balanced_loss_finds_the_rare_class():
    from gill_lite.model.decision import DecisionHead

    g = torch.Generator().manual_seed(0)
    n = 600
    y = (torch.rand(n, generator=g) < 0.1).long()  # 10% "ret"
    x = torch.randn(n, 8, generator=g)
    x[:, 0] += 1.2 * (2 * y.float() - 1)  # overlapping classes
    labels = [judges.LABELS[i] for i in y.tolist()]
    scores = {}
    for balanced in (False, True):
        head = DecisionHead(8, retrieval_score=False)
        classifier.train_decision_head(head, x[:400], labels[:400], steps=400, lr=1e-2, progress=False, balanced=balanced)
        scores[balanced] = classifier.evaluate(head, x[400:], labels[400:])["macro_f1"]
    assert scores[True] > scores[False]
