"""runners/workers.yaml and runners/slurm.yaml (submitit, local executor): seeds as cells, no cell run twice;
a cell on several Slurm tasks (nodes x processes) with the rendezvous from the job's environment."""
import os
import subprocess
from pathlib import Path

import pytest
from runner_helpers import cli, runs_by_cell

from ablate.config.errors import GridError
from ablate.resolve import load_grid
from ablate.runners import load_runner
from ablate.runners.config import read_runner_config
from ablate.runners.slurm import processes, processes_per_node, rendezvous_env

ROOT = Path(__file__).resolve().parents[2]


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
    # the second command exits 1 when a cell it wanted was held by the first one (and says so), else 0
    held = "held by another process" in other_out
    assert other.returncode == (1 if held else 0), other_out
    assert not held or "not done: " in other_out

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


def test_slurm_runner_files_validate_and_count_processes(runner_file):
    one = read_runner_config(ROOT / "runners" / "slurm.yaml")
    assert (one.nodes, processes(one)) == (1, 1)                 # the shipped file: one GPU, one process per cell
    two = read_runner_config(ROOT / "runners" / "slurm-2x8.yaml")
    assert (two.nodes, two.gpus_per_node, processes_per_node(two), processes(two)) == (2, 8, 8, 16)
    cpu = read_runner_config(runner_file("kind: slurm\ncluster: local\ngpus_per_node: 0\ntasks_per_node: 3\n"))
    assert processes(cpu) == 3
    with pytest.raises(GridError) as err:    # submitit's local executor has one node
        read_runner_config(runner_file("kind: slurm\ncluster: local\nnodes: 2\n"))
    assert err.value.key == "nodes" and "nodes must be 1" in str(err.value)
    with pytest.raises(GridError) as err:
        read_runner_config(runner_file("kind: slurm\nnodes: 0\n"))
    assert err.value.key == "nodes"


def _slurm_task(monkeypatch, procid: int, job: str = "4242", array_task: str | None = None) -> dict[str, str]:
    """The environment Slurm gives task `procid` of a 2-node x 8-task job (sbatch --nodes 2 --ntasks-per-node 8)."""
    for key in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
                "SUBMITIT_EXECUTOR", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(key, raising=False)
    env = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": job, "SLURM_NTASKS": "16", "SLURM_JOB_NUM_NODES": "2",
           "SLURM_NODEID": str(procid // 8), "SLURM_JOB_NODELIST": "gpu-a[07-08]", "SLURM_PROCID": str(procid),
           "SLURM_LOCALID": str(procid % 8)}
    if array_task is not None:
        env |= {"SLURM_ARRAY_JOB_ID": job, "SLURM_ARRAY_TASK_ID": array_task}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return rendezvous_env()


def test_rendezvous_from_slurms_environment_on_two_nodes(monkeypatch):
    ranks = [_slurm_task(monkeypatch, p, array_task="3") for p in range(16)]
    assert [int(r["RANK"]) for r in ranks] == list(range(16))
    assert [int(r["LOCAL_RANK"]) for r in ranks] == list(range(8)) * 2      # GPU index on its node
    assert {r["WORLD_SIZE"] for r in ranks} == {"16"} and {r["LOCAL_WORLD_SIZE"] for r in ranks} == {"8"}
    assert {r["MASTER_ADDR"] for r in ranks} == {"gpu-a07"}                  # the job's first node
    ports = {r["MASTER_PORT"] for r in ranks}
    assert len(ports) == 1 and 20000 <= int(ports.pop()) <= 60000            # one rendezvous for the whole job
    other_cell = _slurm_task(monkeypatch, 0, array_task="4")
    assert other_cell["MASTER_PORT"] != ranks[0]["MASTER_PORT"]              # another cell of the array: its own
    monkeypatch.setenv("MASTER_PORT", "29600")                               # set in `setup`: kept
    assert rendezvous_env()["MASTER_PORT"] == "29600"
    assert "CUDA_VISIBLE_DEVICES" not in rendezvous_env() and os.environ.get("CUDA_VISIBLE_DEVICES") != "0"


@pytest.mark.slow
def test_slurm_runner_trains_a_cell_on_two_processes_with_submitits_local_executor(make_grid, runner_file,
                                                                                 workspace):
    grid = load_grid(make_grid(axes="connector.name: [mlp]", steps=3))
    runner = load_runner(runner_file("kind: slurm\ncluster: local\ntimeout_min: 5\ngpus_per_node: 0\n"
                                     "tasks_per_node: 2\ncpus_per_task: 1\n"
                                     "setup: ['export OMP_NUM_THREADS=1', 'export ABLATE_COLLECTIVE_TIMEOUT_S=60']\n"))
    outcome = runner.run(grid, workspace)
    assert outcome.finished == [grid.cells[0].id], outcome
    runs = runs_by_cell(workspace, grid)[grid.cells[0].id]
    assert [r.status for r in runs] == ["FINISHED"]                          # one run: rank 0 logs, rank 1 does not
    assert runs[0].metrics["cost/processes"] == 2.0                          # both tasks joined one process group
    again = runner.run(grid, workspace)
    assert again.finished == [] and again.skipped == [grid.cells[0].id]
