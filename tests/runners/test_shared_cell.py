"""Two grids that share a cell (the same settings, hence the same id and claim): the `ablate run` that finds the
cell held by the other process does not exit 0 with the cell missing from its runs and report; it says which cells
were not done and exits 1."""
from __future__ import annotations

import subprocess
import sys

import pytest
from runner_helpers import runs_by_cell

from ablate.cli import main
from ablate.resolve import load_grid
from ablate.runners.local import claims_dir

HOLDER = """
import sys
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_a_cell_held_by_another_grids_run_is_not_done_and_the_run_exits_1(make_grid, runner_file, workspace, capsys,
                                                                           monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    grid_path = make_grid(axes="connector.name: [avg-pool, mlp]", steps=3)
    grid = load_grid(grid_path)
    free, shared = (c.id for c in grid.cells)
    lock = claims_dir(workspace) / f"{shared}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)   # the other grid's process, training the cell
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run", str(grid_path),
                     "--no-report", "--runner", str(runner_file("kind: local\n"))])
    finally:
        holder.communicate("")
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "1 held by another process" in out
    assert "not done: 1 cells were held by another process" in err and shared in err, err
    runs = runs_by_cell(workspace, grid)
    assert [r.status for r in runs[free]] == ["FINISHED"] and shared not in runs
