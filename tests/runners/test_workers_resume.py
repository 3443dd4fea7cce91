"""A cell whose batches are made by two loader workers (`data.workers: 2`) trains on the loss curve of the same cell
with none, and killed (SIGKILL) after a checkpoint and run again it continues on that curve: the checkpoint holds
the loader's state (torchdata's `StatefulDataLoader.state_dict()`, each worker's stream position)."""
from pathlib import Path

import pytest
import torch
from runner_helpers import assert_same_curve, finished_in, killed_and_resumed
from shards import write_shards

from ablate.resolve import load_grid


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
    torch.set_num_threads(1)
    write_shards(tmp_path / "shards", shards=4, rows=10)
    plain, two = _grid(make_grid, tmp_path / "shards", 0, "plain.yaml"), _grid(make_grid, tmp_path / "shards", 2,
                                                                               "two.yaml")
    reference = finished_in(plain, tmp_path / "reference")
    workspace, saved = killed_and_resumed(two, tmp_path / "killed", runner_file, fault_env)
    assert saved["step"] == 3 and len(saved["data"]["stream"]["loader"]["_snapshot"]["_worker_snapshots"]) == 2
    assert_same_curve(reference, plain, workspace, two, steps=8, from_step=3)
