"""A killed cell resumes from its checkpoint on the same loss curve; divergence, a full disk and an unwritable
store are reported, and a half-written checkpoint is never taken for a good one."""
import errno
import json
import os
import subprocess
import sys

import pytest
import torch
from runner_helpers import assert_same_curve, cli, finished_in, killed_and_resumed, runs_by_cell, store_for

from ablate.cli import main
from ablate.resolve import load_grid
from ablate.runners import run_cells
from ablate.tracking.store import StoreError
from ablate.workspace import Workspace


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_killed_cell_resumes_on_the_uninterrupted_loss_curve(make_grid, runner_file, fault_env, tmp_path, one_thread):
    grid = load_grid(make_grid(axes="connector.name: [mlp]", steps=8, checkpoint_every=3))
    reference = finished_in(grid, tmp_path / "reference")
    workspace, _ = killed_and_resumed(grid, tmp_path / "killed", runner_file, fault_env)
    resumed = assert_same_curve(reference, grid, workspace, grid, steps=8, from_step=3)
    assert [r.status for r in resumed] == ["FAILED", "FINISHED"]
    expected = store_for(reference).loss_curve(runs_by_cell(reference, grid)[grid.cells[0].id][0].run_id)
    assert expected[-1][1] < expected[0][1]                     # and it is a curve that moved


@pytest.mark.slow
def test_diverging_cell_fails_with_step_and_reason_and_the_grid_goes_on(make_grid, workspace, one_thread):
    grid = load_grid(make_grid(axes="train.lr: [1.0e+12, 0.003]", steps=4, checkpoint_every=10))
    outcome = run_cells(grid, grid.cells, workspace)
    huge, fine = (c.id for c in grid.cells)
    assert outcome.finished == [fine]
    reason = outcome.failed[huge]
    assert reason.startswith("diverged at step ") and "loss is nan" in reason.lower() or "10x" in reason
    step = int(reason.split("diverged at step ")[1].split(":")[0])
    assert 2 <= step <= 4                                        # stopped early, not after the last step
    run = runs_by_cell(workspace, grid)[huge][0]
    assert run.status == "FAILED" and run.tags["ablate.failure"] == reason
    assert run.metrics["train/diverged_step"] == step                 # the step and loss that tripped the guard
    assert f"{run.metrics['train/diverged_loss']:.3g}" in reason     # "loss is nan" or "(this step 1.2e+09)"


@pytest.mark.slow
def test_full_disk_while_checkpointing_stops_the_grid_and_keeps_the_last_good_checkpoint(make_grid, workspace,
                                                                                          monkeypatch, one_thread):
    import ablate.checkpoint as checkpoint

    grid = load_grid(make_grid(axes="connector.name: [mlp, avg-pool]", steps=7, checkpoint_every=3))
    cell, other = (c.id for c in grid.cells)
    real_save, calls = checkpoint.save_file, []

    def save_file(tensors, path):       # the second checkpoint (step 6) runs out of space half-way
        calls.append(path)
        if [p.name for p in calls].count("model.safetensors") == 2:
            with open(path, "wb") as handle:
                handle.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(tensors, path)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    with pytest.raises(StoreError, match=f"the grid stopped at cell {cell}.*No space left on device"):
        run_cells(grid, grid.cells, workspace)                    # every later cell would fail the same way
    assert other not in runs_by_cell(workspace, grid)              # so the grid stopped: the next one never started
    run = runs_by_cell(workspace, grid)[cell][0]
    assert run.status == "FAILED" and "No space left on device" in run.tags["ablate.failure"]
    folder = workspace.checkpoints(cell)
    assert sorted(p.name for p in folder.iterdir()) == ["last"]      # no half-written temp folder left behind
    assert json.loads((folder / "last" / "training_state.json").read_text())["step"] == 3

    monkeypatch.setattr(checkpoint, "save_file", real_save)        # space again: resume from step 3
    assert run_cells(grid, grid.cells, workspace).finished == [cell, other]
    runs = runs_by_cell(workspace, grid)[cell]
    assert [r.status for r in runs] == ["FAILED", "FINISHED"] and runs[-1].tags["ablate.resumed_from_step"] == "3"


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["file-for-folder", "folder-for-database"])
def test_unwritable_store_is_one_line_and_exit_2(make_grid, tmp_path, bad):
    grid_path = make_grid(axes="connector.name: [mlp]")
    if bad == "file-for-folder":
        (tmp_path / "full").write_text("a file where a folder should be: the store cannot be created")
        bad_uri = f"sqlite:///{tmp_path}/full/mlflow.db"
    else:                               # sqlite cannot open it: MLflow alone retried for ~13 s, printing each try
        (tmp_path / "mlflow.db").mkdir()
        bad_uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = subprocess.run([sys.executable, "-m", "ablate.cli", "--home", str(tmp_path / "home"), "--tracking-uri",
                           bad_uri, "--reports", str(tmp_path / "reports"), "run", str(grid_path), "--no-report"],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad_uri}: cannot write the tracking store"), proc.stderr
    assert "free disk space" in lines[0]


@pytest.mark.slow
def test_unwritable_workspace_is_a_clear_error(make_grid, tmp_path):
    grid_path = make_grid(axes="connector.name: [mlp]")
    home = tmp_path / "home2"
    home.mkdir()
    (home / "claims").write_text("a file where the claims folder should be")
    workspace = Workspace.create(home)
    with pytest.raises(StoreError, match="cannot write the tracking store or the workspace"):
        run_cells(load_grid(grid_path), load_grid(grid_path).cells, workspace)


# A sitecustomize for the CLI's processes: from step 2 of the `mlp` cell on, every write to the store (MLflow's
# client) and every checkpoint raises ENOSPC, as a disk that filled up does.
DISK_FILLS = '''
import errno
import ablate.cell as _cell
import ablate.checkpoint as _checkpoint
from mlflow.tracking import MlflowClient
FULL = []
def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")
def _guard(owner, name):
    real = getattr(owner, name)
    def write(*args, **kwargs):
        return _full() if FULL else real(*args, **kwargs)
    setattr(owner, name, write)
for _name in ("log_batch", "set_tag", "set_terminated", "log_artifact", "log_dict", "log_table", "create_run"):
    _guard(MlflowClient, _name)
_guard(_checkpoint, "save_file")
class _FullStream:   # a cell's log on the full disk: writes and flushes fail too (DISK_FILLS_LOG=1, children only)
    def __init__(self, stream):
        self._stream = stream
    def write(self, text):
        return _full() if FULL else self._stream.write(text)
    def flush(self):
        return _full() if FULL else self._stream.flush()
    def __getattr__(self, name):
        return getattr(self._stream, name)
import os as _os, sys as _sys
if _os.environ.get("DISK_FILLS_LOG") and _os.environ.get("ABLATE_PARENT_PID"):
    _sys.stdout, _sys.stderr = _FullStream(_sys.stdout), _FullStream(_sys.stderr)
_on_step = _cell.CellHooks.on_step
def on_step(self, step, loss, lr):
    _on_step(self, step, loss, lr)
    if self.cell.config.connector.name == "mlp" and step == 2:
        FULL.append(True)
_cell.CellHooks.on_step = on_step
'''


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["local", "subprocess", "workers", "workers-log-full"])
def test_full_disk_under_the_store_ends_the_grid_with_one_line_and_keeps_finished_cells(
        make_grid, runner_file, workspace, tmp_path, runner):
    """`workers-log-full`: the cell's own log cannot be written either (its process's output fails), as on a disk
    that is really full: the process still exits with the store's code, and the parent says it in one line."""
    grid_path = make_grid(axes="connector.name: [avg-pool, mlp, linear]", steps=4, checkpoint_every=3)
    grid = load_grid(grid_path)
    first, full, never = (c.id for c in grid.cells)
    site = tmp_path / "disk-fills"
    site.mkdir()
    (site / "sitecustomize.py").write_text(DISK_FILLS)
    runner_path = runner_file(f"kind: {runner.removesuffix('-log-full')}\n"
                              + ("workers: 1\n" if runner.startswith("workers") else ""))   # the cells in order
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{site}:{os.environ.get('PYTHONPATH', '')}",
           **({"DISK_FILLS_LOG": "1"} if runner.endswith("-log-full") else {})}
    proc = subprocess.run(cli(workspace, "run", str(grid_path), "--no-report", "--runner", str(runner_path)),
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr   # the progress lines, then it
    assert "Traceback" not in proc.stderr and "WARNING" not in proc.stderr               # no MLflow noise
    assert errors[0].startswith(f"error: {workspace.tracking_uri}: the grid stopped at cell {full}")
    assert "finished cells are kept" in errors[0]
    assert ("No space left on device" in errors[0] if runner != "workers-log-full" else
            "could not write the store or the workspace" in errors[0]), errors[0]   # its log lost what it said

    runs = runs_by_cell(workspace, grid)                              # read with a working disk
    assert [r.status for r in runs[first]] == ["FINISHED"]          # intact
    assert [r.status for r in runs[full]] == ["RUNNING"]            # the store could not even be told
    assert never not in runs                                        # the grid stopped there

    assert main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run", str(grid_path),
                 "--no-report"]) == 0                                # space again: the same command resumes
    after = runs_by_cell(workspace, grid)
    assert [r.run_id for r in after[first]] == [runs[first][0].run_id]
    assert [r.status for r in after[full]] == ["KILLED", "FINISHED"]
    assert [r.status for r in after[never]] == ["FINISHED"]
