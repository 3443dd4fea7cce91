"""What a cell measures about its data (`data/padding_fraction`, `visual_tokens_per_image`) comes from the batches
it trains on, and the stage plan is made once per cell (`ablate.cell`)."""
from __future__ import annotations

import inspect

import pytest
import torch
from tinyworld import IN_PROCESS

from ablate.cell import TrainCost
from ablate.data.batch import Batch


def _batch(widths: list[int], width: int, images: list[str]) -> Batch:
    mask = torch.tensor([[1] * w + [0] * (width - w) for w in widths])
    return Batch(mask * 5, mask, mask * 5, images, torch.tensor([len(images)] + [0] * (len(widths) - 1)))


def test_padding_is_each_batchs_share_with_its_micro_batches_together_and_blocks_are_measured_per_image():
    cost = TrainCost(image_token_id=9, block=lambda path: [9] * len(path), grad_accum=2)
    # one batch of 4 rows of width 4 (real lengths 4, 2, 1, 1: 8 of 16 positions padding), as two micro-batches
    cost.count(_batch([4, 2], 4, ["ab"]))
    cost.count(_batch([1, 1], 4, ["abcd", "abcd"]))
    cost.count(_batch([3], 3, []))           # the next batch, one row, no padding
    cost.count(_batch([3], 3, []))
    metrics = cost.data_metrics()
    assert cost.padding == [0.5, 0.0]
    assert metrics["data/padding_fraction"] == 0.25
    assert metrics["visual_tokens_per_image"] == (2 + 4 + 4) / 3
    assert "visual_tokens_per_image" not in TrainCost(9).data_metrics()   # no image seen: not logged


def test_timing_wraps_the_hooks_without_changing_them():
    calls = []

    class Hooks:
        def on_step(self, step, loss, lr):
            calls.append(step)

        def on_checkpoint(self, step, state):
            calls.append(("checkpoint", step))

    hooks, cost = Hooks(), TrainCost(9)
    timed = cost.timed(hooks)
    timed.on_step(1, 1.0, 0.1)
    timed.on_step(2, 1.0, 0.1)
    timed.on_checkpoint(2, {})
    assert calls == [1, 2, ("checkpoint", 2)] and len(cost.step_s) == 1
    assert "on_step" not in vars(hooks)                 # the hooks object keeps its own method
    assert getattr(timed, "on_stage", None) is None     # a hook the object lacks stays absent


@pytest.mark.slow
def test_a_cell_measures_its_training_batches_and_plans_its_stages_once(tiny_grid, workspace, monkeypatch):
    import ablate.cell
    import ablate.config.stages
    import ablate.train.optim
    from ablate.cli import main
    from ablate.data import train_batches
    from ablate.models.build import build_mllm
    from ablate.resolve import load_grid
    from ablate.tracking.results import results_frame
    from ablate.tracking.store import Store
    from ablate.world import build_world

    planned = []
    real_plan = ablate.config.stages.plan

    def counting(train):
        if any(frame.function == "run_cell" for frame in inspect.stack()):
            planned.append(train)
        return real_plan(train)

    for module in (ablate.cell, ablate.config.stages, ablate.train.optim):
        monkeypatch.setattr(module, "plan", counting)
    grid_path = tiny_grid(axes="train.grad_accum: [2]", steps=10)
    assert main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run", str(grid_path),
                 "--no-report", *IN_PROCESS]) == 0
    assert len(planned) == 1                      # build, optimiser, speed path, hooks, checkpoints: one plan

    frame, _ = results_frame(Store(workspace.tracking_uri, workspace.artifacts), load_grid(grid_path))
    row = frame.iloc[0]
    assert row["status"] == "FINISHED"
    # what the cell measured before training, computed apart: its first 8 batches, the world's caption images
    cfg = load_grid(grid_path).cells[0].config
    world = build_world(cfg.data.world, workspace.cache)
    model = build_mllm(cfg, workspace.cache)
    stream = train_batches(cfg.data, world, model.tokenizer, model.image_tokens, cfg.train.batch_size,
                           cfg.train.seed)
    first = [next(stream).padding_fraction for _ in range(TrainCost.PADDING_BATCHES)]
    assert row["data/padding_fraction"] == pytest.approx(sum(first) / len(first), abs=1e-12)
    images = [r["image"] for r in world.read("caption")[:64]]
    assert row["visual_tokens_per_image"] == sum(len(model.image_tokens.block(p)) for p in images) / len(images)
