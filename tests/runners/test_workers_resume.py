"""A cell whose batches are made by two loader workers (`data.workers: 2`) trains on the loss curve of the same cell
with none, and killed (SIGKILL) after a checkpoint and run again it continues on that curve: the checkpoint holds
the loader's state (torchdata's `StatefulDataLoader.state_dict()`, each worker's stream position)."""
import json
import sys
from pathlib import Path

import pytest
import torch
from runner_helpers import runs_by_cell, store_for

from ablate.resolve import load_grid
from ablate.runners import load_runner, run_cells
from ablate.workspace import Workspace


def _grid(make_grid, shards: Path, workers: int, name: str):
    path = make_grid(axes="connector.name: [mlp]", steps=8, checkpoint_every=3)
    source = (f'workers: {workers}, sources: [{{kind: caption, path: "{shards}", format: webdataset}}], '
              'mixture: {caption: 1.0}, ')
    text = path.read_text().replace("data: {", "data: {" + source)
    moved = path.with_name(name)
    moved.write_text(text)
    return load_grid(moved)


@pytest.mark.slow
def test_two_loader_workers_train_the_same_curve_and_a_killed_cell_resumes_on_it(make_grid, runner_file, fault_env,
                                                                                 tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
    from test_streaming import write_shards

    torch.set_num_threads(1)
    write_shards(tmp_path / "shards", shards=4, rows=10)
    plain, two = _grid(make_grid, tmp_path / "shards", 0, "plain.yaml"), _grid(make_grid, tmp_path / "shards", 2,
                                                                               "two.yaml")
    reference = Workspace.create(tmp_path / "reference", reports=tmp_path / "r1")
    assert run_cells(plain, plain.cells, reference).finished == [plain.cells[0].id]

    workspace = Workspace.create(tmp_path / "killed", reports=tmp_path / "r2")
    env = fault_env({"mlp": ("sigkill", 5)})     # killed at step 5: the last checkpoint is step 3
    killed = load_runner(runner_file(f'kind: subprocess\nenv: {{PYTHONPATH: "{env["PYTHONPATH"]}", '
                                     f'OMP_NUM_THREADS: "1"}}\n')).run(two, workspace)
    cell = two.cells[0].id
    assert "SIGKILL" in killed.failed[cell]
    saved = json.loads((workspace.checkpoints(cell) / "last" / "training_state.json").read_text())
    assert saved["step"] == 3 and len(saved["data"]["stream"]["loader"]["_snapshot"]["_worker_snapshots"]) == 2
    assert run_cells(two, two.cells, workspace).finished == [cell]

    resumed = runs_by_cell(workspace, two)[cell]
    assert resumed[-1].tags["ablate.resumed_from_step"] == "3"
    expected = store_for(reference).loss_curve(runs_by_cell(reference, plain)[plain.cells[0].id][0].run_id)
    got = store_for(workspace).loss_curve(resumed[-1].run_id)
    assert [s for s, _ in got] == [s for s, _ in expected] == list(range(1, 9))
    assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-5, abs=1e-6)
