"""runners/subprocess.yaml: a crash, an OOM-style SIGKILL or a hang fails that cell only; the grid goes on."""
import re
import time

import pytest
from runner_helpers import runs_by_cell

from ablate.resolve import load_grid
from ablate.runners import load_runner
from ablate.runners.process import ProcessRunner


@pytest.mark.slow
def test_killed_and_hung_cells_fail_with_reasons_and_the_grid_goes_on(make_grid, runner_file, fault_env, workspace,
                                                                      tmp_path, monkeypatch):
    grid = load_grid(make_grid(axes="connector.name: [avg-pool, mlp]", steps=6))
    env = fault_env({"avg-pool": ("sigkill", 2), "mlp": ("hang", 2)})
    runner = load_runner(runner_file(f"""
        kind: subprocess
        time_limit_s: 2
        grace_s: 2
        env: {{PYTHONPATH: "{env['PYTHONPATH']}", OMP_NUM_THREADS: "1"}}
        """))

    # The time limit counts from the moment the child hangs (it writes hung-<pid> at step 2), not from its start:
    # how long a loaded machine takes to import and build the model does not matter.
    real_wait, faults = ProcessRunner._wait, tmp_path / "faults"

    def wait_from_the_hang(self, proc):
        safety_net = time.monotonic() + 900          # only a broken child gets here: fail rather than wait forever
        while proc.poll() is None and not list(faults.glob("hung-*")):
            assert time.monotonic() < safety_net, "the child neither hung nor ended"
            time.sleep(0.05)
        return real_wait(self, proc)

    monkeypatch.setattr(ProcessRunner, "_wait", wait_from_the_hang)
    outcome = runner.run(grid, workspace)

    killed, hung = (c.id for c in grid.cells)
    assert outcome.finished == []
    assert set(outcome.failed) == {killed, hung}
    assert "killed by SIGKILL" in outcome.failed[killed] and "out-of-memory" in outcome.failed[killed]
    assert "time limit exceeded" in outcome.failed[hung] and "after 2 s" in outcome.failed[hung]
    assert len(list(faults.glob("hung-*"))) == 1

    runs = runs_by_cell(workspace, grid)
    assert [r.status for r in runs[killed]] == ["FAILED"]
    assert runs[killed][0].tags["ablate.failure"] == outcome.failed[killed]
    assert [r.status for r in runs[hung]] == ["FAILED"]
    assert "time limit" in runs[hung][0].tags["ablate.failure"]
    assert runs[hung][0].metrics["connector_params"] > 0     # what the run logged before the hang is kept
    log = (workspace.home / "logs" / grid.name / f"{hung}.log").read_text()
    assert "training 6 steps" in log


@pytest.mark.slow
def test_a_workers_process_runs_its_cells_one_after_another_and_a_crash_costs_only_its_cell(
        make_grid, runner_file, fault_env, workspace):
    """runners/workers.yaml: one worker's process runs the cells the parent hands it, one after another (what it
    loaded stays); a cell that kills the process fails alone, and the next cell gets a fresh process."""
    grid = load_grid(make_grid(axes="connector.name: [mlp, avg-pool, linear, pixel-shuffle]", steps=4))
    env = fault_env({"avg-pool": ("sigkill", 2)})
    runner = load_runner(runner_file(f"""
        kind: workers
        workers: 1
        gpus: none
        env: {{PYTHONPATH: "{env['PYTHONPATH']}"}}
        """))
    outcome = runner.run(grid, workspace)

    first, killed, third, fourth = (c.id for c in grid.cells)
    assert sorted(outcome.finished) == sorted([first, third, fourth])
    assert set(outcome.failed) == {killed} and "killed by SIGKILL" in outcome.failed[killed]
    assert [r.status for r in runs_by_cell(workspace, grid)[killed]] == ["FAILED"]

    def worker(cell_id: str) -> tuple[int, int]:   # (pid of the process that ran it, its how-manieth cell)
        log = (workspace.home / "logs" / grid.name / f"{cell_id}.log").read_text()
        pid, count = re.search(r"worker process (\d+): cell \w+, its cell (\d+)", log).groups()
        return int(pid), int(count)

    assert worker(first)[1] == 1 and worker(killed) == (worker(first)[0], 2)   # the same process, its 2nd cell
    assert worker(third)[0] != worker(first)[0] and worker(third)[1] == 1     # a fresh one after the crash
    assert worker(fourth) == (worker(third)[0], 2)
    assert "training 4 steps" in (workspace.home / "logs" / grid.name / f"{fourth}.log").read_text()
