"""Checkpoints: the training state loads without unpickling anything and continues exactly; an unreadable checkpoint
is skipped with a warning naming its file (the previous one, or the start, takes over); a resumed cell's wall time
counts its earlier attempt."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from runner_helpers import runs_by_cell, store_for
from safetensors.torch import load, save

from ablate import checkpoint
from ablate.resolve import load_grid
from ablate.runners import run_cells
from ablate.workspace import Workspace


def optimiser_and_schedule(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    groups = [{"name": "a", "params": list(model[0].parameters()), "lr": 0.01},
              {"name": "b", "params": list(model[1].parameters()), "lr": 0.02, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.95))
    from transformers import get_cosine_schedule_with_warmup

    return model, optimizer, get_cosine_schedule_with_warmup(optimizer, 2, 10)


def steps(model, optimizer, scheduler, n: int) -> list[float]:
    losses = []
    for _ in range(n):
        x = torch.randn(3, 4)          # draws from the RNG: a restored RNG gives the same batches
        loss = model(x).pow(2).mean() + float(np.random.rand()) + random.random()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    return losses


def test_training_state_round_trips_through_json_and_safetensors_exactly():
    model, optimizer, scheduler = optimiser_and_schedule()
    steps(model, optimizer, scheduler, 3)
    tensors: dict = {}
    packed = checkpoint._pack({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                               "rng": checkpoint._rng_state()}, tensors)
    text, blob = json.dumps(packed), save(tensors)              # plain JSON and safetensors: nothing to unpickle
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    expected = steps(model, optimizer, scheduler, 4)

    fresh, optimizer2, scheduler2 = optimiser_and_schedule(seed=1)   # other weights, other RNG
    fresh.load_state_dict(weights)
    restored = checkpoint._unpack(json.loads(text), load(blob))
    optimizer2.load_state_dict(restored["optimizer"])
    scheduler2.load_state_dict(restored["scheduler"])
    checkpoint._set_rng_state(restored["rng"])
    assert steps(fresh, optimizer2, scheduler2, 4) == expected   # bit for bit
    assert isinstance(restored["rng"]["python"], tuple) and restored["rng"]["numpy"][1].dtype == np.uint32


def test_a_value_that_is_not_plain_data_is_refused_when_saving():
    with pytest.raises(TypeError, match="cannot store a object"):
        checkpoint._pack({"x": object()}, {})


def fail_at(monkeypatch, step: int, sleep_s: float = 0.0):
    """Make the cell fail at `step` (after its checkpoints before it), each step taking at least `sleep_s`."""
    import time

    import ablate.cell as cell_module

    real = cell_module.CellHooks.on_step

    def on_step(self, at, loss, lr):
        real(self, at, loss, lr)
        time.sleep(sleep_s)
        if at == step:
            raise RuntimeError(f"stopped at step {at} by the test")

    monkeypatch.setattr(cell_module.CellHooks, "on_step", on_step)
    return lambda: monkeypatch.setattr(cell_module.CellHooks, "on_step", real)


@pytest.mark.slow
@pytest.mark.parametrize("broken, resumes_from, damage", [(["last"], 3, "truncated"),
                                                          (["last", "last.previous"], 0, "truncated"),
                                                          (["last"], 3, "same-size")],
                         ids=["previous-takes-over", "fresh-start", "same-size-corruption"])
def test_an_unreadable_checkpoint_is_skipped_with_a_warning_and_the_cell_still_matches(
        make_grid, tmp_path, monkeypatch, caplog, broken, resumes_from, damage):
    torch.set_num_threads(1)
    grid = load_grid(make_grid(axes="connector.name: [mlp]", steps=8, checkpoint_every=3))
    cell = grid.cells[0].id
    reference = Workspace.create(tmp_path / "reference", reports=tmp_path / "r1")
    assert run_cells(grid, grid.cells, reference).finished == [cell]

    workspace = Workspace.create(tmp_path / "broken", reports=tmp_path / "r2")
    restore = fail_at(monkeypatch, 7, sleep_s=0.2)              # checkpoints at 3 and 6, then a failure
    assert cell in run_cells(grid, grid.cells, workspace).failed
    restore()
    folder = workspace.checkpoints(cell)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("last")) == ["last", "last.previous"]
    assert not list(folder.glob("**/*.pt"))                      # nothing pickled
    file = checkpoint.STATE_TENSORS if damage == "truncated" else "model.safetensors"
    for name in broken:
        path = folder / name / file
        blob = path.read_bytes()
        if damage == "truncated":                                # as a full disk or a bad copy leaves it
            path.write_bytes(blob[:100])
        else:                                                    # random bytes inside the weights, the size kept
            noise = np.random.default_rng(0).bytes(min(4096, len(blob) // 2))
            start = len(blob) - len(noise)
            path.write_bytes(blob[:start] + noise)
            assert path.stat().st_size == len(blob) and path.read_bytes() != blob

    caplog.clear()
    assert run_cells(grid, grid.cells, workspace).finished == [cell]
    for name in broken:
        assert str(folder / name / file) in caplog.text
    if damage == "same-size":
        assert "content changed since it was written" in caplog.text
    resumed = runs_by_cell(workspace, grid)[cell][-1]
    assert resumed.tags.get("ablate.resumed_from_step", "0") == str(resumes_from)
    expected = store_for(reference).loss_curve(runs_by_cell(reference, grid)[cell][0].run_id)
    got = store_for(workspace).loss_curve(resumed.run_id)
    assert [s for s, _ in got] == list(range(1, 9))
    assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_a_resumed_cells_wall_time_counts_its_earlier_attempt(make_grid, workspace, monkeypatch):
    torch.set_num_threads(1)
    grid = load_grid(make_grid(axes="connector.name: [mlp]", steps=6, checkpoint_every=3))
    cell = grid.cells[0].id
    restore = fail_at(monkeypatch, 5, sleep_s=0.5)              # 3 slow steps before the checkpoint at step 3
    assert cell in run_cells(grid, grid.cells, workspace).failed
    restore()
    saved = json.loads((workspace.checkpoints(cell) / "last" / checkpoint.STATE_JSON).read_text())
    assert saved["step"] == 3 and saved["elapsed_s"] >= 1.5

    assert run_cells(grid, grid.cells, workspace).finished == [cell]
    run = runs_by_cell(workspace, grid)[cell][-1]
    assert run.tags["ablate.resumed_from_step"] == "3"
    assert run.metrics["wall_s"] >= saved["elapsed_s"] + run.metrics["time/train_s"] + run.metrics["time/eval_s"]


@pytest.mark.slow
def test_a_checkpoint_from_an_older_version_is_never_unpickled(make_grid, workspace, caplog):
    torch.set_num_threads(1)
    grid = load_grid(make_grid(axes="connector.name: [mlp]", steps=4, checkpoint_every=10))
    cell = grid.cells[0].id
    old = workspace.checkpoints(cell) / "last"
    old.mkdir(parents=True)
    marker = workspace.home / "unpickled"
    torch.save({"step": 2, "trap": Trap(marker)}, old / checkpoint.LEGACY_STATE)   # runs code if unpickled
    assert run_cells(grid, grid.cells, workspace).finished == [cell]
    assert not marker.exists()
    assert str(old / checkpoint.LEGACY_STATE) in caplog.text and "never loaded" in caplog.text
    assert "ablate.resumed_from_step" not in runs_by_cell(workspace, grid)[cell][-1].tags


class Trap:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('unpickled')",))


@pytest.mark.slow
def test_a_finished_cell_keeps_its_final_checkpoint_only_unless_told_to_keep_its_resume_state(make_grid, workspace):
    torch.set_num_threads(1)
    grid = load_grid(make_grid(axes="train.keep_resume_state: [false, true]", steps=6, checkpoint_every=2))
    lean, kept = (c.id for c in grid.cells)
    assert sorted(run_cells(grid, grid.cells, workspace).finished) == sorted([lean, kept])
    # `eval/` holds the evaluation's task files (20 KB: what ran); the resume state goes once the run is FINISHED
    assert sorted(p.name for p in workspace.checkpoints(lean).iterdir()) == ["eval", "final"]
    assert sorted(p.name for p in workspace.checkpoints(kept).iterdir()) == ["eval", "final", "last", "last.previous"]
    saved = json.loads((workspace.checkpoints(kept) / "last" / checkpoint.STATE_JSON).read_text())
    assert saved["step"] == 4                                    # the resume state of steps 2 and 4, kept on purpose
