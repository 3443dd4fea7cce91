"""The divergence guard watches from the first steps: the mean of the last few losses far above the stage's first
loss stops the cell, NaN / inf at once; one noisy batch does not."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ablate.config.schema import TrainConfig
from ablate.train.loop import GUARD_WINDOW, Diverged, TrainState, far_above, train


class Scripted(torch.nn.Module):
    """A model whose loss is the next value of a script (with a gradient, so the optimiser steps)."""

    def __init__(self, losses):
        super().__init__()
        self.w, self.losses, self.device = torch.nn.Parameter(torch.zeros(1)), iter(losses), torch.device("cpu")

    def forward(self, *args, **kwargs):
        return SimpleNamespace(loss=self.w.sum() * 0 + next(self.losses))


class Hooks:
    def __init__(self):
        self.steps = []

    def on_step(self, step, loss, lr):
        self.steps.append((step, loss))

    def on_checkpoint(self, step, state):
        pass


def _run(losses, state=None, stage_start=0):
    model = Scripted(losses)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    batch = SimpleNamespace(input_ids=torch.zeros(1, 2, dtype=torch.long), attention_mask=torch.ones(1, 2),
                            labels=torch.zeros(1, 2, dtype=torch.long), images=[])
    cfg = TrainConfig(steps=len(losses) + (state.step if state else 0), checkpoint_every=1000, precision="fp32")
    hooks = Hooks()
    return train(model, iter([batch] * len(losses)), cfg, optimizer, scheduler, hooks, state,
                 stage_start=stage_start), hooks


def test_a_loss_far_above_its_start_is_flagged_in_the_first_steps():
    # a real case: a pretrained LLM at a learning rate far too high for it went 2.21 -> 10.07 in 7 steps
    with pytest.raises(Diverged, match="far above its starting value 2.21") as err:
        _run([2.21, 2.5, 3.4, 5.0, 6.3, 10.07, 1.0])
    assert err.value.step == 6 and far_above(2.21) < 10.07
    assert err.value.loss == pytest.approx(10.07) and "this step 10.1" in str(err.value)      # the loss that tripped it
    assert "mean of the last 3 losses, 7.12" in str(err.value)                   # (5.0 + 6.3 + 10.07) / 3
    state, hooks = _run([2.21, 2.5, 3.0, 6.0, 2.0])     # a bump under twice the start plus 2 is not divergence
    assert state.step == 5 and len(hooks.steps) == 5


def test_a_noisy_but_recovering_loss_is_not_divergence():
    """A LoRA cell at batch 2 on instruction rows (1-3 answer tokens a row): single batches far above twice the
    first loss plus 2 (13.32 > 8.66), on the way to 0.60. The mean of the last losses never is."""
    noisy = [3.33, 4.95, 7.27, 3.85, 6.22, 13.32, 4.1, 2.9, 2.2, 1.7, 1.3, 1.1, 0.9, 0.8, 0.7, 0.65, 0.6]
    assert max(noisy) > far_above(noisy[0])              # the old one-batch rule would have stopped it at step 6
    state, hooks = _run(noisy)
    assert state.step == len(noisy) and [v for _, v in hooks.steps] == pytest.approx(noisy)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_at_once_with_its_value(bad):
    with pytest.raises(Diverged, match=f"loss is {bad}") as err:
        _run([2.0, 1.9, bad, 1.8])
    assert err.value.step == 3 and str(err.value.loss) == str(bad)


def test_a_blow_up_long_after_the_start_is_caught_against_the_best_mean():
    healthy = [5.0] + [0.2] * 24
    with pytest.raises(Diverged, match="more than 10x the best so far") as err:
        _run(healthy + [9.0] * GUARD_WINDOW)     # over 10 x 0.2 + 5 = 7, under 2 x 5.0 + 2 = 12
    assert err.value.step > len(healthy) and err.value.loss == 9.0


def test_a_resumed_cell_keeps_its_starting_loss_as_the_reference():
    with pytest.raises(Diverged, match="starting value 2") as err:
        _run([7.0, 7.5, 8.0], TrainState(step=3, losses=[(1, 2.0), (2, 2.1), (3, 2.2)]))
    assert err.value.step == 6          # (7.0 + 7.5 + 8.0) / 3 > 2 x 2.0 + 2, with the checkpoint's first loss



def test_the_divergence_guard_measures_each_stage_from_its_own_first_loss():
    """An instruction stage starts on answer tokens alone (measured in grids/stages.yaml: 0.76 on captions, then
    5.4 at the first instruction step): not divergence. Far above the stage's own start still is."""
    def first():   # stage 1 on captions
        return TrainState(step=3, losses=[(1, 0.76), (2, 0.74), (3, 0.7)])

    assert _run([5.4, 5.7, 3.9], first(), stage_start=3)[0].step == 6
    with pytest.raises(Diverged, match="starting value 5.4"):
        _run([5.4, 12.0, 13.0, 14.0], first(), stage_start=3)


@pytest.mark.slow
def test_a_tiny_model_at_an_absurd_learning_rate_is_stopped_within_a_few_steps(tiny_backbones, tmp_path):
    from test_stages import Record, config, train_cell

    cfg = config(tiny_backbones, lr=30.0, steps=12)
    hooks = Record()
    with pytest.raises(Diverged, match="far above its starting value") as err:
        train_cell(cfg, tmp_path / "cache", hooks)
    assert err.value.step <= 4 and len(hooks.losses) < 4     # not only NaN, and long before step 20
