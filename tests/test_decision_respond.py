"""Only the chosen path runs: the generator is never called when the decision is retrieve."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from gill_lite.decision.respond import show_image
from gill_lite.inference import RetrievalIndex
from gill_lite.model.decision import GENERATE, RETRIEVE, DecisionHead
from gill_lite.model.retrieval import RetrievalHeads

D = 16


class TinyGill(nn.Module):
    """Just the parts inference's decide/retrieve/generate touch: decision head, retrieval heads, mapper."""

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
    return RetrievalIndex.from_features(model, torch.randn(5, 8, generator=torch.Generator().manual_seed(1)),
                                        [f"train-{i}" for i in range(5)])


def test_retrieve_never_calls_the_generator():
    model = TinyGill(prefer=RETRIEVE)
    states = torch.randn(1, 8, D)
    out = show_image(model, SimpleNamespace(generator=FailingGenerator()), _index(model), states,
                     image_of=lambda i: np.full((8, 8, 3), int(i.split("-")[1]), np.uint8))
    assert out["choice"] == "retrieve" and out["retrieved_id"].startswith("train-")
    assert out["probabilities"]["retrieve"] > 0.9
    assert out["image"][0, 0, 0] == int(out["retrieved_id"].split("-")[1])


def test_generate_calls_the_generator_once_and_retrieves_nothing():
    model = TinyGill(prefer=GENERATE)
    gen = CountingGenerator()
    out = show_image(model, SimpleNamespace(generator=gen), None, torch.randn(1, 8, D), seed=3)
    assert out["choice"] == "generate" and out["retrieved_id"] is None and gen.calls == 1
    assert out["image"].shape == (8, 8, 3)
    assert out["probabilities"]["generate"] == pytest.approx(1 - out["probabilities"]["retrieve"])


def test_one_query_at_a_time():
    model = TinyGill(prefer=RETRIEVE)
    with pytest.raises(ValueError):
        show_image(model, None, _index(model), torch.randn(2, 8, D))
