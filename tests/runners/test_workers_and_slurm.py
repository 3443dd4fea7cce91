"""runners/workers.yaml and runners/slurm.yaml (submitit, local executor): seeds as cells, no cell run twice."""
import os
import subprocess

import pytest
from runner_helpers import cli, runs_by_cell

from ablate.resolve import load_grid
from ablate.runners import load_runner


@pytest.mark.slow
def test_two_workers_and_a_second_ablate_run_never_run_one_cell_twice(make_grid, runner_file, workspace):
    grid_path = make_grid(axes="connector.name: [mlp]", steps=3, extra="seeds: [0, 1]\n")
    grid = load_grid(grid_path)
    assert sorted(c.config.train.seed for c in grid.cells) == [0, 1]
    workers = runner_file("kind: workers\nworkers: 2\ngpus: none\nthreads_per_worker: 1\n")
    # a second `ablate run` of the same grid, started by mistake at the same time, with two workers of its own
    other = subprocess.Popen(cli(workspace, "run", str(grid_path), "--no-report", "--runner", str(workers)),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        mine = load_runner(workers).run(grid, workspace)
        other_out, _ = other.communicate(timeout=120)
    finally:
        if other.poll() is None:
            other.kill()
    assert other.returncode == 0, other_out

    runs = runs_by_cell(workspace, grid)
    assert sorted(runs) == sorted(c.id for c in grid.cells)
    assert all([r.status for r in cell_runs] == ["FINISHED"] for cell_runs in runs.values())   # once each
    assert sorted(runs[c.id][0].params["train.seed"] for c in grid.cells) == ["0", "1"]
    # each cell is finished by exactly one of the two commands; the other saw it held or done
    assert len(mine.finished) + int(other_out.split(" cells finished")[0].split()[-1]) == 2
    assert sorted(mine.finished + mine.claimed_elsewhere + mine.skipped) == sorted(c.id for c in grid.cells)
    losses = [runs[c.id][0].metrics["train/final_loss"] for c in grid.cells]
    assert losses[0] != losses[1]                                   # the seeds made different cells


@pytest.mark.slow
def test_slurm_runner_with_submitits_local_executor_is_resumable(make_grid, runner_file, workspace):
    grid = load_grid(make_grid(axes="connector.name: [mlp]", steps=3, extra="seeds: [0, 1]\n"))
    runner = load_runner(runner_file("kind: slurm\ncluster: local\ntimeout_min: 5\ngpus_per_node: 0\n"
                                     "cpus_per_task: 1\nsetup: ['export OMP_NUM_THREADS=1']\n"))
    first = runner.run(grid, workspace)
    assert sorted(first.finished) == sorted(c.id for c in grid.cells), first
    jobs = (workspace.home / "submitit" / f"{grid.name}-jobs.json").read_text()
    assert all(c.id in jobs for c in grid.cells)
    runs = runs_by_cell(workspace, grid)
    assert all([r.status for r in runs[c.id]] == ["FINISHED"] for c in grid.cells)
    again = runner.run(grid, workspace)                  # resumable: nothing left to submit
    assert again.finished == [] and sorted(again.skipped) == sorted(c.id for c in grid.cells)
