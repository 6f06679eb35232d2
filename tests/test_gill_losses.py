"""GILL's losses on hand-made tensors."""
import math

import pytest
import torch

from gill_lite.distributed import all_gather_with_grad
from gill_lite.losses import contrastive_loss, generation_loss, lm_loss
from gill_lite.train.steps import caption_inputs


def test_lm_loss_shifts_and_ignores():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 2] = math.log(3)  # p(2) = 3/6 at step 0
    labels = torch.tensor([[-100, 2, -100]])  # only position 1 is labelled, predicted from position 0
    assert lm_loss(logits, labels).item() == pytest.approx(-math.log(0.5))
    with pytest.raises(ValueError):
        lm_loss(logits, labels[:, :2])


def test_generation_loss_is_mean_token_euclidean_distance():
    target = torch.zeros(2, 3, 2)
    pred = target.clone()
    pred[0, 0] = torch.tensor([3.0, 4.0])  # distance 5; the other 5 tokens: 0
    assert generation_loss(pred, target).item() == pytest.approx(5 / 6, rel=1e-5)
    pred.requires_grad_(True)
    generation_loss(pred, target).backward()
    assert torch.isfinite(pred.grad).all()  # exact matches do not give NaN gradients
    with pytest.raises(ValueError):
        generation_loss(pred[:, :2], target)


def test_contrastive_loss_values():
    e = torch.eye(3)
    # perfect matches: logits diag = s, off-diag 0 -> CE = -log(e^s / (e^s + 2))
    s = 2.0
    expected = -math.log(math.exp(s) / (math.exp(s) + 2))
    assert contrastive_loss(e, e, torch.tensor(s)).item() == pytest.approx(expected, rel=1e-5)
    # symmetric: a non-symmetric similarity averages both directions
    t = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), dim=1)
    i = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    sim = t @ i.t()
    manual = (torch.nn.functional.cross_entropy(sim, torch.arange(2)) +
              torch.nn.functional.cross_entropy(sim.t(), torch.arange(2))) / 2
    assert contrastive_loss(t, i, torch.tensor(1.0)).item() == pytest.approx(manual.item(), rel=1e-6)
    # shuffled pairs are worse than matched ones
    assert contrastive_loss(e, e[[1, 2, 0]], torch.tensor(s)) > contrastive_loss(e, e, torch.tensor(s))


def test_all_gather_without_process_group_is_identity():
    x = torch.randn(3, 2, requires_grad=True)
    assert all_gather_with_grad(x) is x


class _FakeModel:
    bos_id = 1
    device = torch.device("cpu")

    def tokenize_batch(self, texts):
        return [[10 + len(w) for w in text.split()] for text in texts]

    def embed_tokens(self, ids):
        return ids.float()[:, None].expand(-1, 2)


def test_caption_pairs_concatenate_half_the_examples():
    prefix = torch.full((4, 3, 2), -1.0)  # 4 examples, 3 visual tokens each
    captions = ["a b", "ccc", "dd ee f", "g"]
    embeds, mask, labels = caption_inputs(_FakeModel(), prefix, captions, concat_fraction=0.5)
    assert embeds.shape[0] == 3  # (0,1) joined, 2 and 3 alone
    row0 = labels[0][mask[0].bool()].tolist()
    # [3 visual] BOS a b [3 visual] ccc: the second caption's BOS is removed (published captioning concat)
    assert row0 == [-100] * 4 + [11, 11] + [-100] * 3 + [13]
    bos_rows = embeds[0][mask[0].bool()][:, 0] == _FakeModel.bos_id
    assert bos_rows.sum() == 1 and bos_rows[3]
    assert labels[2][mask[2].bool()].tolist() == [-100] * 4 + [11]
    assert mask.sum(1).tolist() == [10, 7, 5]
    _, _, single = caption_inputs(_FakeModel(), prefix, captions, concat_fraction=0.0)
    assert single.shape[0] == 4
    # BOS [3 visual] a b [3 visual] ccc (`bos_before_images`): the same labels, the BOS moved to the front
    first, first_mask, first_labels = caption_inputs(_FakeModel(), prefix, captions, concat_fraction=0.5,
                                                     bos_first=True)
    assert torch.equal(first_labels, labels) and torch.equal(first_mask, mask)
    assert (embeds[0][mask[0].bool()][:, 0] == _FakeModel.bos_id).nonzero().flatten().tolist() == [3]
    assert (first[0][first_mask[0].bool()][:, 0] == _FakeModel.bos_id).nonzero().flatten().tolist() == [0]
    assert first[0][1:4].eq(-1.0).all() and first[2][:5, 0].tolist() == [_FakeModel.bos_id, -1, -1, -1, 11]
    _, _, chosen = caption_inputs(_FakeModel(), prefix, captions, groups=[(3, 0), (1,), (2,)])
    assert chosen[0][:10].tolist() == [-100] * 4 + [11] + [-100] * 3 + [11, 11]
