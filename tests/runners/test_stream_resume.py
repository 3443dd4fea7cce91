"""A cell on streamed webdataset shards, killed (SIGKILL) after a checkpoint and run again, trains on exactly the
loss curve of one that was not: the checkpoint holds the stream's own state (`IterableDataset.state_dict`)."""
import json

import pytest
import torch
from runner_helpers import runs_by_cell, store_for

from ablate.resolve import load_grid
from ablate.runners import load_runner, run_cells
from ablate.workspace import Workspace


@pytest.mark.slow
def test_a_killed_cell_on_streamed_shards_resumes_on_the_uninterrupted_curve(make_grid, runner_file, fault_env,
                                                                             tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
    from test_streaming import write_shards

    torch.set_num_threads(1)
    write_shards(tmp_path / "shards", shards=4, rows=10)
    path = make_grid(axes="connector.name: [mlp]", steps=8, checkpoint_every=3)
    source = f'sources: [{{kind: caption, path: "{tmp_path}/shards", format: webdataset}}], mixture: {{caption: 1.0}}, '
    path.write_text(path.read_text().replace("data: {", "data: {" + source))
    grid = load_grid(path)
    reference = Workspace.create(tmp_path / "reference", reports=tmp_path / "r1")
    assert run_cells(grid, grid.cells, reference).finished == [grid.cells[0].id]

    workspace = Workspace.create(tmp_path / "killed", reports=tmp_path / "r2")
    env = fault_env({"mlp": ("sigkill", 5)})     # killed at step 5: the last checkpoint is step 3
    killed = load_runner(runner_file(f'kind: subprocess\nenv: {{PYTHONPATH: "{env["PYTHONPATH"]}", '
                                     f'OMP_NUM_THREADS: "1"}}\n')).run(grid, workspace)
    cell = grid.cells[0].id
    assert "SIGKILL" in killed.failed[cell]
    saved = json.loads((workspace.checkpoints(cell) / "last" / "training_state.json").read_text())
    assert saved["step"] == 3 and saved["data"]["stage"] == "train" and "examples_iterable" in saved["data"]["stream"]
    assert run_cells(grid, grid.cells, workspace).finished == [cell]

    resumed = runs_by_cell(workspace, grid)[cell]
    assert resumed[-1].tags["ablate.resumed_from_step"] == "3"
    expected = store_for(reference).loss_curve(runs_by_cell(reference, grid)[cell][0].run_id)
    got = store_for(workspace).loss_curve(resumed[-1].run_id)
    assert [s for s, _ in got] == [s for s, _ in expected] == list(range(1, 9))
    assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-5, abs=1e-6)
