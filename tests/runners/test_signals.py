"""Nothing lost: SIGKILL, SIGTERM or Ctrl-C in the middle of `python -m ablate.cli run`, then a rerun.

The rerun completes the grid with exactly one FINISHED run per cell; the interrupted cell's earlier run is closed
as KILLED; the cell finished before the interruption keeps its run; the interrupted cell resumes from a checkpoint.
"""
import os
import signal
import subprocess
import sys
import time

import pytest
from runner_helpers import cli, runs_by_cell

from ablate.cli import main
from ablate.resolve import load_grid
from ablate.runners.claims import claim
from ablate.runners.protocol import END_WITHIN_S

RUNNERS = {"subprocess": "kind: subprocess\ngrace_s: 5\n", "local": "kind: local\n",
           "workers": "kind: workers\nworkers: 1\ngpus: none\ngrace_s: 5\n"}   # one process runs both cells


def wait_for(predicate, timeout: float, what: str, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {what}:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


STUCK_AFTER_SIGTERM = """
import sys, threading
from ablate.runners.protocol import Terminated, sigterm_raises
with sigterm_raises(end_within_s=1):
    try:
        print("ready", flush=True)
        threading.Event().wait()
    except Terminated:
        print("closing", flush=True)
        threading.Event().wait()   # closing the run hangs: a lock the interrupted code held
"""


def test_a_process_whose_closing_hangs_after_sigterm_still_ends():
    proc = subprocess.Popen([sys.executable, "-c", STUCK_AFTER_SIGTERM], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline() == "closing\n"
        assert proc.wait(timeout=60) == -signal.SIGALRM   # the alarm SIGTERM armed (1 s here), not our kill
    finally:
        proc.kill()


@pytest.mark.parametrize("sig, runner", [(signal.SIGKILL, "subprocess"), (signal.SIGTERM, "local"),
                                         (signal.SIGINT, "local"), (signal.SIGINT, "workers"),
                                         (signal.SIGKILL, "workers")],
                         ids=["sigkill", "sigterm", "ctrl-c", "ctrl-c-workers", "sigkill-workers"])
@pytest.mark.slow
def test_interrupted_grid_resumes_with_one_finished_run_per_cell(sig, runner, make_grid, runner_file, workspace):
    # 30 steps: the kill lands after the second cell's first checkpoint (step 3) and a few steps may pass before
    # it takes effect (more on a loaded machine); the cell must still be training then, not evaluating
    grid_path = make_grid(steps=30, checkpoint_every=3)
    grid = load_grid(grid_path)
    first, second = grid.cells
    runner_path = runner_file(RUNNERS[runner])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cli(workspace, "run", str(grid_path), "--no-report", "--runner", str(runner_path)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    checkpoint = workspace.checkpoints(second.id) / "last" / "training_state.json"   # written last
    try:
        wait_for(checkpoint.is_file, 120, "the second cell's first checkpoint", proc)
        proc.send_signal(sig)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read()
    if sig == signal.SIGKILL:
        assert rc == -signal.SIGKILL
    elif sig == signal.SIGTERM:
        assert rc == 143, output                     # 128 + 15, as the convention says
        assert "terminated (signal 15): finished cells are kept" in output
    else:
        assert rc == 130, output                     # 128 + 2
        assert "interrupted: finished cells are kept" in output

    # the cell's process (under the subprocess runner) dies with its parent: its claim comes free
    def free() -> bool:
        with claim(workspace.home / "claims", second.id) as mine:
            return mine
    # (the kernel ends it within protocol.END_WITHIN_S of SIGTERM even if closing the run hangs: see the test below)
    wait_for(free, 3 * END_WITHIN_S, "the interrupted cell's claim to come free")
    before = runs_by_cell(workspace, grid)
    assert [r.status for r in before[first.id]] == ["FINISHED"]
    assert [r.status for r in before[second.id]] != ["FINISHED"]
    if sig != signal.SIGKILL:   # SIGTERM and Ctrl-C close the run themselves
        assert [r.status for r in before[second.id]] == ["KILLED"]
        assert "interrupted" in before[second.id][0].tags["ablate.failure"]

    assert main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run", str(grid_path),
                 "--no-report"]) == 0
    after = runs_by_cell(workspace, grid)
    assert [r.run_id for r in after[first.id]] == [before[first.id][0].run_id]     # kept, not re-run
    assert [r.status for r in after[second.id]] == ["KILLED", "FINISHED"]          # stale run closed, one finished
    resumed = after[second.id][-1]
    assert int(resumed.tags["ablate.resumed_from_step"]) in range(3, 30, 3)
    from runner_helpers import store_for

    steps = [step for step, _ in store_for(workspace).loss_curve(resumed.run_id)]
    assert steps == list(range(1, 31))                                             # the whole curve, once
