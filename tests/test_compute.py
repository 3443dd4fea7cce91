"""Training compute: FLOPs counted on one step against a hand count, budgets turned into steps."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from ablate.config.schema import Budget, TrainConfig
from ablate.train.compute import StepCost, measure_step, mfu, steps_for


class LinearEncoder(nn.Module):
    """Pixels (n, 3, 4, 4) -> features (n, 4 patches, 6): one matrix product of (n*4, 12) x (12, 6)."""

    def __init__(self, trains: bool):
        super().__init__()
        self.proj = nn.Linear(12, 6, bias=False).requires_grad_(trains)

    def preprocess(self, images):
        return torch.ones(len(images), 3, 4, 4)

    def forward(self, pixels):
        n = pixels.shape[0]
        return self.proj(pixels.reshape(n, 3, 4, 2, 2).permute(0, 3, 1, 2, 4).reshape(n, 4, 12))


class LinearMLLM(nn.Module):
    """Features -> (n, 6) pooled; token embeddings (B, T, 6) -> logits (B, T, 10): one trained matrix product."""

    def __init__(self, encoder_trains: bool):
        super().__init__()
        self.encoder = LinearEncoder(encoder_trains)
        self.embed = nn.Embedding(10, 6)
        self.head = nn.Linear(6, 10, bias=False)

    @property
    def device(self):
        return torch.device("cpu")

    def forward(self, input_ids, attention_mask, labels, images, features=None):
        hidden = self.embed(input_ids) + features.mean(dim=(0, 1))
        hidden = hidden + 0 * torch.rand_like(hidden)   # draws from the random state, as dropout would
        logits = self.head(hidden)
        return SimpleNamespace(loss=nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten()))


def batch(rows: int = 2, length: int = 5, pad: int = 1):
    mask = torch.ones(rows, length, dtype=torch.long)
    mask[:, length - pad:] = 0
    return SimpleNamespace(input_ids=torch.zeros(rows, length, dtype=torch.long), attention_mask=mask,
                           labels=torch.zeros(rows, length, dtype=torch.long), images=["a.png", "b.png"])


@pytest.fixture(autouse=True)
def no_image_files(monkeypatch):
    monkeypatch.setattr("ablate.train.compute.load_images", lambda paths: [None] * len(paths))


@pytest.mark.parametrize("encoder_trains", [False, True])
def test_one_step_counts_what_a_hand_count_says(encoder_trains):
    model = LinearMLLM(encoder_trains)
    cost = measure_step(model, batch())
    encoder_forward = 2 * (2 * 4) * 12 * 6                  # (8, 12) x (12, 6)
    # backward of a weight that trains: the weight's gradient, as many FLOPs again (its input needs none)
    assert cost.encoder_flops == encoder_forward * (2 if encoder_trains else 1)
    head_forward = 2 * (2 * 5) * 6 * 10                     # (10, 6) x (6, 10)
    # the head's backward: the gradient of its weight and of its input (the embeddings train): twice its forward
    assert cost.flops == cost.encoder_flops + 3 * head_forward
    assert (cost.tokens, cost.samples) == (2 * 4, 2)       # padding left out of the tokens
    assert all(p.grad is None for p in model.parameters())  # the count leaves no gradient behind


def test_the_count_leaves_the_random_state_as_it_was():
    model = LinearMLLM(False)
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    measure_step(model, batch())
    assert torch.equal(torch.rand(3), expected)


def test_a_step_cost_totals_over_the_steps():
    metrics = StepCost(encoder_flops=10, flops=100, tokens=7, samples=2).metrics(steps=30)
    assert metrics == {"cost/step_flops": 100.0, "cost/train_flops": 3000.0, "cost/train_tokens": 210.0,
                       "cost/train_samples": 60.0}


def test_a_budget_in_samples_gives_the_same_steps_whatever_the_visual_tokens():
    budget = Budget(samples=1000)
    for tokens in (64, 144):
        step = StepCost(encoder_flops=0, flops=10**9 * tokens, tokens=16 * (tokens + 12), samples=16)
        assert steps_for(budget, 16, step) == 63   # 1000 / 16, rounded up
    assert TrainConfig(budget={"samples": 1000}, batch_size=16).steps == 63


def test_a_budget_in_tokens_or_flops_buys_fewer_steps_with_more_visual_tokens():
    small = StepCost(encoder_flops=0, flops=2 * 10**9, tokens=16 * (64 + 12), samples=16)
    large = StepCost(encoder_flops=0, flops=4 * 10**9, tokens=16 * (144 + 12), samples=16)
    assert steps_for(Budget(tokens=400_000), 16, small) == 329   # 400,000 / 1,216
    assert steps_for(Budget(tokens=400_000), 16, large) == 161   # 400,000 / 2,496
    assert steps_for(Budget(flops=1e12), 16, small) == 500
    assert steps_for(Budget(flops=1e12), 16, large) == 250
    with pytest.raises(ValueError, match="needs a measured step"):
        steps_for(Budget(tokens=10), 16)


@pytest.mark.parametrize("train, message", [
    ({"budget": {"samples": 10}, "steps": 5}, "not both"),
    ({"budget": {}}, "exactly one of samples, tokens, flops"),
    ({"budget": {"samples": 10, "tokens": 10}}, r"given: samples, tokens"),
    ({"budget": {"samples": 0}}, "greater than or equal to 1"),
    ({"budget": {"steps": 10}}, "Extra inputs"),
    ({"budget": {"samples": 10}, "stages": [{"name": "a", "steps": 3}]}, "stages"),
])
def test_a_budget_that_cannot_be_meant_is_refused(train, message):
    with pytest.raises(ValidationError, match=message):
        TrainConfig(**train)


def test_mfu_is_only_stated_where_the_peak_is_known():
    assert mfu(1e12, 1.0, torch.device("cpu")) is None
