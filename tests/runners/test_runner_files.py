"""Runner files: validated like grids (file, key, allowed values); worker slots; the multigpu launch command."""
import os
import sys
from pathlib import Path

import pytest
import torch

from ablate.config.errors import GridError
from ablate.runners import LocalRunner, load_runner
from ablate.runners.config import MultiGPUConfig, WorkersConfig, read_runner_config, worker_slots
from ablate.runners.multigpu import launcher_argv
from ablate.runners.process import ProcessRunner
from ablate.runners.slurm import SlurmRunner

REPO = Path(__file__).resolve().parents[2]


def test_every_shipped_runner_file_loads():
    kinds = {p.stem: type(load_runner(p)) for p in sorted((REPO / "runners").glob("*.yaml"))}
    assert kinds == {"local": LocalRunner, "multigpu": ProcessRunner, "slurm": SlurmRunner,
                     "slurm-2x8": SlurmRunner, "subprocess": ProcessRunner, "workers": ProcessRunner}
    default, workers = load_runner(None), load_runner(REPO / "runners" / "workers.yaml")
    assert isinstance(default, ProcessRunner)   # without --runner: a process per cell, one per GPU or CPU core
    assert [(s.name, s.env) for s in default.slots] == [(s.name, s.env) for s in workers.slots]
    assert len(default.slots) == (torch.cuda.device_count() or len(os.sched_getaffinity(0)))
    assert all(s.env["OMP_NUM_THREADS"] == "1" for s in default.slots)
    slurm = read_runner_config(REPO / "runners" / "slurm.yaml")
    assert slurm.timeout_min == 120 and slurm.wait is True


@pytest.mark.parametrize("text, key, words", [
    ("kind: kubernetes\n", "kind", ["unknown runner kind 'kubernetes'", "local, subprocess, workers, multigpu, slurm"]),
    ("kind: subprocess\ntime_limit: 60\n", "time_limit", ["unknown key", "time_limit_s", "did you mean"]),
    ("kind: multigpu\nlauncher: mpirun\n", "launcher", ["accelerate, torchrun", "mpirun"]),
    ("kind: workers\nworkers: 0\n", "workers", ["greater than or equal to 1"]),
    ("kind: slurm\ncluster: pbs\n", "cluster", ["slurm, local, debug"]),
    ("workers: 2\n", "kind", ["Allowed: local"]),
])
def test_bad_runner_files_name_file_key_and_allowed_values(tmp_path, text, key, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(GridError) as err:
        load_runner(path)
    message = str(err.value)
    assert message.startswith(f"{path}: key '{key}'") or message.startswith(f"{path}:")
    assert f"'{key}'" in message
    for word in words:
        assert word in message, message


def test_missing_runner_file_lists_the_ones_next_to_it():
    with pytest.raises(GridError, match="runner file not found.*local.yaml, multigpu.yaml"):
        load_runner(REPO / "runners" / "slurn.yaml")


def test_worker_slots_one_per_gpu_or_per_cpu_threads():
    gpu = worker_slots(WorkersConfig(kind="workers"), gpu_count=3, cpu_count=32)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in gpu] == ["0", "1", "2"]
    cpu = worker_slots(WorkersConfig(kind="workers", threads_per_worker=4), gpu_count=0, cpu_count=16)
    assert len(cpu) == 4 and {s.env["OMP_NUM_THREADS"] for s in cpu} == {"4"}
    assert {s.env["CUDA_VISIBLE_DEVICES"] for s in cpu} == {""}
    picked = worker_slots(WorkersConfig(kind="workers", workers=4, gpus=[1, 3]), gpu_count=8)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in picked] == ["1", "3", "1", "3"]


def test_multigpu_launch_commands():
    wrapper = ["py", "-m", "ablate.runners.multigpu"]   # keeps rank 0's exit code (a launcher says 1)
    acc = launcher_argv(MultiGPUConfig(kind="multigpu", gpus=4, main_process_port=29511), python="py")
    assert acc[:3] == wrapper
    acc = acc[3:]
    assert acc == ["py", "-m", "accelerate.commands.launch", "--num_processes", "4", "--multi_gpu",
                   "--num_machines", "1", "--mixed_precision", "bf16", "--dynamo_backend", "no",
                   "--main_process_port", "29511", "-m"]
    torchrun = launcher_argv(MultiGPUConfig(kind="multigpu", launcher="torchrun", gpus=2,
                                            extra_args=["--max-restarts=0"]), python="py")[3:]
    assert torchrun == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                        "--max-restarts=0", "-m"]
    one = launcher_argv(MultiGPUConfig(kind="multigpu", gpus=1), python="py")[3:]
    assert "--multi_gpu" not in one and one[one.index("--num_processes") + 1] == "1"
    # the launchers accept these options (parsed by their own argument parsers, nothing launched)
    from accelerate.commands.launch import launch_command_parser

    parsed = launch_command_parser().parse_args([*acc[3:], "ablate.runners.child", "g.yaml", "abc"])
    assert parsed.num_processes == 4 and parsed.multi_gpu and parsed.module
    assert parsed.training_script == "ablate.runners.child" and parsed.training_script_args == ["g.yaml", "abc"]
    from torch.distributed.run import get_args_parser

    targs = get_args_parser().parse_args([*torchrun[3:], "ablate.runners.child", "g.yaml"])
    assert targs.nproc_per_node == "2" and targs.module and targs.standalone


@pytest.mark.slow
def test_multigpu_runner_runs_a_cell_under_torchrun_on_cpu(make_grid, runner_file, workspace):
    """Two gloo ranks on CPU: rank 0 claims, trains, records and evaluates the cell; rank 1 trains its share of
    every batch and logs nothing; one FINISHED run."""
    from ablate.resolve import load_grid

    grid = load_grid(make_grid(axes="connector.name: [mlp]", steps=3))
    runner = load_runner(runner_file("kind: multigpu\nlauncher: torchrun\ngpus: 2\nenv: {OMP_NUM_THREADS: '1'}\n"))
    assert runner.launcher[3:6] == [sys.executable, "-m", "torch.distributed.run"]
    outcome = runner.run(grid, workspace)
    assert outcome.finished == [grid.cells[0].id]
    log = (workspace.home / "logs" / grid.name / f"{grid.cells[0].id}.log").read_text()
    assert "rank 1 of 2 trains its share of cell" in log and "rank 0 of 2 (gloo" in log
    from ablate.tracking.store import Store

    store = Store(workspace.tracking_uri, workspace.artifacts)
    runs = [r for r in store.runs(store.experiment_id(grid)) if r.cell_id == grid.cells[0].id]
    assert [r.status for r in runs] == ["FINISHED"]


def test_several_workers_start_the_dearest_cells_first(tmp_path, monkeypatch):
    """With more than one worker the cells are handed out by steps x visual tokens, dearest first (the last ones to
    start are short, so no worker waits long on another at the end); each keeps its index in the grid."""
    from ablate.resolve import load_grid
    from ablate.runners import process
    from ablate.runners.local import GridOutcome
    from ablate.runners.process import Slot
    from ablate.workspace import Workspace

    path = tmp_path / "g.yaml"
    path.write_text("name: order\nbase: {train: {steps: 10}}\naxes:\n  connector.tokens: [16, 144, 64]\n"
                    "  train.steps: [10, 30]\n")
    grid = load_grid(path)
    started = []

    def record(self, grid, cell, workspace, store, experiment, slot, progress=None, index=0):
        started.append((index, cell.config.train.steps * cell.config.connector.tokens))
        return GridOutcome(finished=[cell.id])

    class NothingFinished:   # the store's one question here, without opening an MLflow store (seconds)
        def finished_cells(self, experiment):
            return set()

    monkeypatch.setattr(ProcessRunner, "run_cell", record)
    monkeypatch.setattr(process, "open_store", lambda workspace, grid: (NothingFinished(), "0"))
    workspace = Workspace.create(home=tmp_path / "home")
    outcome = ProcessRunner(slots=[Slot("a")]).run(grid, workspace)
    assert [i for i, _ in started] == [1, 2, 3, 4, 5, 6] and len(outcome.finished) == 6   # one worker: grid order
    started.clear()
    ProcessRunner(slots=[Slot("a"), Slot("b")]).run(grid, workspace)
    costs = [cost for _, cost in started]
    assert sorted(costs[:2], reverse=True) == [4320, 1920] and sorted(costs[-2:]) == [160, 480]
    assert sorted(i for i, _ in started) == [1, 2, 3, 4, 5, 6]
