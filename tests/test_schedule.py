"""The learning-rate schedule equals transformers' cosine schedule with warm-up, and loads its checkpoints."""
import pytest
import torch
from transformers import get_cosine_schedule_with_warmup

from ablate.train.optim import cosine_with_warmup


def _lrs(scheduler, steps: int) -> list[float]:
    values = []
    for _ in range(steps):
        values.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return values


def _optimizer(lr: float = 0.01):
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr)


@pytest.mark.parametrize(("warmup", "steps"), [(0, 1), (0, 50), (5, 50), (40, 400), (3, 7), (10, 10)])
def test_same_values_as_transformers(warmup, steps):
    ours = _lrs(cosine_with_warmup(_optimizer(), warmup, steps), steps + 3)
    theirs = _lrs(get_cosine_schedule_with_warmup(_optimizer(), warmup, steps), steps + 3)
    assert ours == theirs   # exactly: the same formula in the same float operations
    assert max(ours) <= 0.01 and (warmup == steps or ours[steps] == 0.0) and (warmup == 0 or ours[0] == 0.0)


def test_a_transformers_scheduler_state_loads_and_continues_the_same():
    theirs = get_cosine_schedule_with_warmup(_optimizer(), 4, 30)
    _lrs(theirs, 11)
    ours = cosine_with_warmup(_optimizer(), 4, 30)
    ours.load_state_dict(theirs.state_dict())
    assert _lrs(ours, 19) == _lrs(theirs, 19)
