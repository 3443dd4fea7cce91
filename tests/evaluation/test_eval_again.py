"""A finished grid whose evaluation changes is evaluated again from its final checkpoints, and nothing trains
: the new score goes to the cell's run, the old ones stay; the same settings twice evaluate nothing;
a run made before ids left the eval block out (tagged with the legacy id) is recognised as its cell's."""
import shutil

import pytest
from tinyworld import IN_PROCESS

from ablate.cli import main
from ablate.evaluation import keys
from ablate.resolve import legacy_cell_id, load_grid
from ablate.tracking.results import read_predictions
from ablate.tracking.store import CELL_TAG, Store

pytestmark = pytest.mark.slow   # trains a tiny cell and evaluates it through lmms-eval (about a minute)


def cli(workspace, *argv) -> int:   # in this process: the tests patch what a cell does
    extra = IN_PROCESS if argv[0] == "run" else []
    return main(["--home", str(workspace.home), "--reports", str(workspace.reports), *argv, *extra, "--no-report"])


def the_run(store, grid):
    runs = [r for r in store.runs(store.experiment_id(grid, create=False)) if r.cell_id]
    assert len(runs) == 1, runs
    return runs[0]


def test_a_changed_evaluation_evaluates_the_final_checkpoint_and_trains_nothing(tiny_grid, workspace, monkeypatch,
                                                                                 capsys):
    import ablate.cell

    path = tiny_grid(axes="connector.name: [avg-pool]", steps=6)
    # without blind copies: the calls below are the tasks themselves (blind copies: tests/evaluation/test_evaluate.py)
    path.write_text(path.read_text().replace("eval: {tasks:", "eval: {blind: false, tasks:"))
    assert cli(workspace, "run", str(path)) == 0
    store = Store(workspace.tracking_uri, workspace.artifacts)
    grid = load_grid(path)
    first = the_run(store, grid)
    assert first.cell_id == grid.cells[0].id
    assert keys.pending(grid.cells[0].config.eval, first.tags) == {}
    losses = store.loss_curve(first.run_id)
    assert [step for step, _ in losses] == list(range(1, 7))

    # a task added to the finished grid: evaluated from the final checkpoint, in the same run, nothing trained
    path.write_text(path.read_text().replace("tasks: [world_vqa, world_textvqa]",
                                             "tasks: [world_vqa, world_textvqa, world_caption]"))
    grid = load_grid(path)
    assert grid.cells[0].id == first.cell_id                       # the same trained model
    capsys.readouterr()
    assert main(["--home", str(workspace.home), "ls", str(path)]) == 0
    listed = capsys.readouterr().out
    assert "finished: 1" in listed and "evaluations to do (world_caption/0shot)" in listed
    with monkeypatch.context() as patch:
        patch.setattr(ablate.cell, "run_cell", lambda *a, **k: pytest.fail("a cell was trained"))
        calls = []
        import ablate.evaluation.cells as cells

        real = cells.evaluate
        patch.setattr(cells, "evaluate", lambda m, c, w, o, only=None: calls.append(set(only)) or real(m, c, w, o,
                                                                                                          only=only))
        assert cli(workspace, "run", str(path)) == 0
    assert calls == [{("world_caption", 0)}]
    again = the_run(store, grid)
    assert again.run_id == first.run_id and again.status == "FINISHED"
    assert 0 <= again.metrics["score/world_caption/0shot"]
    for key in ("score/world_vqa/0shot", "score/world_textvqa/0shot", "text/perplexity"):
        assert again.metrics[key] == first.metrics[key], key       # the old scores kept
    assert store.loss_curve(again.run_id) == losses                # no training step logged
    assert again.metrics["chance/world_vqa"] > 0 and "chance/world_vqa/colour" in again.metrics
    out = capsys.readouterr().out
    assert "0 cells finished, 1 already done" in out and "world_caption/0shot" in out
    predictions = read_predictions(store, again.run_id)           # the run's sample: the new task's rows added
    assert set(predictions["task"]) == {"world_vqa", "world_textvqa", "world_caption"}
    per_task = predictions["task"].value_counts().to_dict()

    # the same settings again: nothing is evaluated (nor trained)
    with monkeypatch.context() as patch:
        patch.setattr(ablate.cell, "run_cell", lambda *a, **k: pytest.fail("a cell was trained"))
        patch.setattr(cells, "evaluate", lambda *a, **k: pytest.fail("evaluated twice with the same settings"))
        assert cli(workspace, "run", str(path)) == 0
        assert cli(workspace, "eval", str(path)) == 0

    # a run made before ids left the eval block out: tagged with the legacy id of the config it ran with (two
    # tasks), its checkpoint under that id, no evaluation tags. It is recognised; only the caption is pending.
    original = load_grid(path).cells[0].config.model_copy(
        update={"eval": grid.cells[0].config.eval.model_copy(update={"tasks": ["world_vqa", "world_textvqa"]})})
    old_id = legacy_cell_id(original)
    shutil.move(workspace.checkpoints(first.cell_id), workspace.checkpoints(old_id))
    for tag in [t for t in again.tags if t.startswith(keys.EVAL_TAG)]:
        store.client.delete_tag(again.run_id, tag)
    store.client.set_tag(again.run_id, CELL_TAG, old_id)
    store.client.set_tag(again.run_id, "ablate.checkpoint", str(workspace.checkpoints(old_id) / "final"))
    calls.clear()
    with monkeypatch.context() as patch:
        patch.setattr(ablate.cell, "run_cell", lambda *a, **k: pytest.fail("a legacy cell was trained again"))
        patch.setattr(cells, "evaluate", lambda m, c, w, o, only=None: calls.append(set(only)) or real(m, c, w, o,
                                                                                                          only=only))
        assert cli(workspace, "eval", str(path)) == 0
    assert calls == [{("world_caption", 0)}]
    adopted = the_run(store, grid)
    assert adopted.cell_id == grid.cells[0].id and adopted.tags["ablate.legacy_cell_id"] == old_id
    assert keys.pending(grid.cells[0].config.eval, adopted.tags) == {}
    assert read_predictions(store, adopted.run_id)["task"].value_counts().to_dict() == per_task   # replaced, not added
    assert "recognised" in capsys.readouterr().out


def test_a_cell_whose_evaluation_failed_is_evaluated_not_trained_again(tiny_grid, workspace, monkeypatch, capsys):
    """Training ended (final checkpoint written), then the evaluation failed: the next `ablate run` evaluates the
    final checkpoint into the same run, closes it FINISHED, and trains nothing."""
    import ablate.cell
    import ablate.evaluation.cells as cells

    path = tiny_grid(axes="connector.name: [avg-pool]", steps=4)
    with monkeypatch.context() as patch:
        patch.setattr(cells, "evaluate", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("lmms-eval broke")))
        assert cli(workspace, "run", str(path)) == 1
    store = Store(workspace.tracking_uri, workspace.artifacts)
    grid = load_grid(path)
    failed = the_run(store, grid)
    assert failed.status == "FAILED" and "lmms-eval broke" in failed.tags["ablate.failure"]
    assert (workspace.checkpoints(grid.cells[0].id) / "final" / "model.safetensors").is_file()
    with monkeypatch.context() as patch:
        patch.setattr(ablate.cell, "run_cell", lambda *a, **k: pytest.fail("a trained cell was trained again"))
        assert cli(workspace, "run", str(path)) == 0
    done = the_run(store, grid)
    assert done.run_id == failed.run_id and done.status == "FINISHED" and "ablate.failure" not in done.tags
    assert keys.pending(grid.cells[0].config.eval, done.tags) == {}
    assert 0 <= done.metrics["score/world_vqa/0shot"] <= 1 and done.metrics["time/train_s"] > 0
    assert len(store.loss_curve(done.run_id)) == 4
