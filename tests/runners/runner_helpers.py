"""Helpers for the runner tests: the store, runs per cell, the CLI as a child process."""
from __future__ import annotations

import sys


def store_for(workspace):

    from ablate.tracking.store import Store

    return Store(workspace.tracking_uri, workspace.artifacts)


def runs_by_cell(workspace, grid) -> dict[str, list]:
    """{cell_id: [RunRecord, ...]} oldest first."""
    store = store_for(workspace)
    experiment = store.experiment_id(grid, create=False)
    out: dict[str, list] = {}
    for record in sorted(store.runs(experiment) if experiment else [], key=lambda r: r.start_time):
        if record.cell_id:
            out.setdefault(record.cell_id, []).append(record)
    return out


def cli(workspace, *args) -> list[str]:
    return [sys.executable, "-m", "ablate.cli", "--home", str(workspace.home), "--reports", str(workspace.reports),
            *args]


def kill_cell(grid, workspace, runner_file, fault_env, step: int = 5, connector: str = "mlp") -> str:
    """Run `grid`'s one cell in a subprocess that SIGKILLs itself at training step `step` (the `fault_env`
    fixture's hook, one thread); the failure the runner recorded."""
    from ablate.runners import load_runner

    env = fault_env({connector: ("sigkill", step)})
    killed = load_runner(runner_file(f'kind: subprocess\nenv: {{PYTHONPATH: "{env["PYTHONPATH"]}", '
                                     f'OMP_NUM_THREADS: "1"}}\n')).run(grid, workspace)
    return killed.failed[grid.cells[0].id]


def finished_in(grid, folder):
    """A workspace in `folder` where `grid`'s one cell ran uninterrupted, in this process (the reference curve)."""
    from ablate.runners import run_cells
    from ablate.workspace import Workspace

    workspace = Workspace.create(folder / "home", reports=folder / "reports")
    assert run_cells(grid, grid.cells, workspace).finished == [grid.cells[0].id]
    return workspace


def killed_and_resumed(grid, folder, runner_file, fault_env) -> tuple:
    """A workspace in `folder` where `grid`'s one cell was SIGKILLed at step 5 (`kill_cell`), then run again to the
    end; and the training state of the checkpoint it resumed from, as it was after the kill."""
    import json

    from ablate.runners import run_cells
    from ablate.workspace import Workspace

    workspace = Workspace.create(folder / "home", reports=folder / "reports")
    assert "SIGKILL" in kill_cell(grid, workspace, runner_file, fault_env)   # at step 5: the checkpoint is step 3
    cell = grid.cells[0].id
    saved = json.loads((workspace.checkpoints(cell) / "last" / "training_state.json").read_text())
    assert run_cells(grid, grid.cells, workspace).finished == [cell]
    return workspace, saved


def assert_same_curve(reference, reference_grid, workspace, grid, steps: int, from_step: int) -> list:
    """The cell's last run in `workspace` resumed at `from_step` and logged, step for step, the loss curve of the
    uninterrupted run in `reference`; its runs, oldest first."""
    import pytest

    runs = runs_by_cell(workspace, grid)[grid.cells[0].id]
    assert runs[-1].tags["ablate.resumed_from_step"] == str(from_step)
    expected = store_for(reference).loss_curve(runs_by_cell(reference, reference_grid)[reference_grid.cells[0].id][0]
                                               .run_id)
    got = store_for(workspace).loss_curve(runs[-1].run_id)
    assert [s for s, _ in got] == [s for s, _ in expected] == list(range(1, steps + 1))
    assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-5, abs=1e-6)
    return runs
