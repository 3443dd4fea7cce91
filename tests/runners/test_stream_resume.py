"""A cell on streamed webdataset shards, killed (SIGKILL) after a checkpoint and run again, trains on exactly the
loss curve of one that was not: the checkpoint holds the stream's own state (`IterableDataset.state_dict`)."""
import pytest
import torch
from runner_helpers import assert_same_curve, finished_in, killed_and_resumed
from shards import write_shards

from ablate.resolve import load_grid


@pytest.mark.slow
def test_a_killed_cell_on_streamed_shards_resumes_on_the_uninterrupted_curve(make_grid, runner_file, fault_env,
                                                                             tmp_path):
    torch.set_num_threads(1)
    write_shards(tmp_path / "shards", shards=4, rows=10)
    path = make_grid(axes="connector.name: [mlp]", steps=8, checkpoint_every=3)
    source = f'sources: [{{kind: caption, path: "{tmp_path}/shards", format: webdataset}}], mixture: {{caption: 1.0}}, '
    path.write_text(path.read_text().replace("data: {", "data: {" + source))
    grid = load_grid(path)
    reference = finished_in(grid, tmp_path / "reference")
    workspace, saved = killed_and_resumed(grid, tmp_path / "killed", runner_file, fault_env)
    assert saved["step"] == 3 and saved["data"]["stage"] == "train" and "examples_iterable" in saved["data"]["stream"]
    assert_same_curve(reference, grid, workspace, grid, steps=8, from_step=3)
