"""runners/subprocess.yaml: a crash, an OOM-style SIGKILL or a hang fails that cell only; the grid goes on."""
import pytest
from runner_helpers import runs_by_cell

from ablate.resolve import load_grid
from ablate.runners import load_runner


@pytest.mark.slow
def test_killed_and_hung_cells_fail_with_reasons_and_the_grid_goes_on(make_grid, runner_file, fault_env, workspace):
    grid = load_grid(make_grid(axes="connector.name: [avg-pool, mlp]", steps=6))
    env = fault_env({"avg-pool": ("sigkill", 2), "mlp": ("hang", 2)})
    runner = load_runner(runner_file(f"""
        kind: subprocess
        time_limit_s: 12
        grace_s: 2
        env: {{PYTHONPATH: "{env['PYTHONPATH']}", OMP_NUM_THREADS: "1"}}
        """))
    outcome = runner.run(grid, workspace)

    killed, hung = (c.id for c in grid.cells)
    assert outcome.finished == []
    assert set(outcome.failed) == {killed, hung}
    assert "killed by SIGKILL" in outcome.failed[killed] and "out-of-memory" in outcome.failed[killed]
    assert "time limit exceeded" in outcome.failed[hung] and "12 s" in outcome.failed[hung]

    runs = runs_by_cell(workspace, grid)
    assert [r.status for r in runs[killed]] == ["FAILED"]
    assert runs[killed][0].tags["ablate.failure"] == outcome.failed[killed]
    assert [r.status for r in runs[hung]] == ["FAILED"]
    assert "time limit" in runs[hung][0].tags["ablate.failure"]
    assert runs[hung][0].metrics["connector_params"] > 0     # what the run logged before the hang is kept
    log = (workspace.home / "logs" / grid.name / f"{hung}.log").read_text()
    assert "training 6 steps" in log
