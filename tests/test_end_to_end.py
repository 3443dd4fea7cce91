"""`ablate run` on a 2-cell grid: trains, evaluates, tracks, reports; a second run re-runs nothing."""
import pytest

from ablate.cli import main
from ablate.resolve import load_grid
from ablate.tracking.results import results_frame
from ablate.tracking.store import Store


def run(grid_path, workspace, *extra) -> int:
    return main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run", str(grid_path), *extra])


@pytest.mark.slow
def test_two_cells_train_evaluate_track_and_report(tiny_grid, workspace, capsys):
    import pdfplumber

    grid_path = tiny_grid()
    assert run(grid_path, workspace) == 0
    grid = load_grid(grid_path)
    store = Store(workspace.tracking_uri, workspace.artifacts)
    frame, curves = results_frame(store, grid)
    assert list(frame["status"]) == ["FINISHED", "FINISHED"]
    for column in ("score/world_vqa/0shot", "score/world_textvqa/0shot", "connector_params", "connector_flops"):
        assert frame[column].notna().all(), column
    assert frame["score/world_vqa/0shot"].between(0, 1).all()
    assert frame["connector_params"].nunique() == 2            # avg-pool and attn-pool differ in size
    for cell in grid.cells:                                      # a loss curve per cell, falling
        steps, losses = zip(*curves[cell.id])
        assert steps == tuple(range(1, 13))
        assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3

    experiment = store.experiment_id(grid, create=False)
    run_ids = [r.run_id for r in store.runs(experiment) if r.cell_id]
    assert len(run_ids) == 2
    artifacts = {a.path for a in store.client.list_artifacts(run_ids[0])}
    assert {"cell_config.json", "predictions.json"} <= artifacts

    pdf = workspace.reports / "tiny" / "tiny_report.pdf"
    assert pdf.is_file()
    text = "\n".join(page.extract_text() or "" for page in pdfplumber.open(pdf).pages)
    for _, row in frame.iterrows():
        assert f"{100 * row['score/world_vqa/0shot']:.1f}" in text
    assert "avg-pool" in text and "attn-pool" in text

    # the run says where its runs are in the MLflow UI (the runs table, not MLflow 3's GenAI page); the only
    # progress it prints is the grid's own (no lmms-eval "Postprocessing" bars in a log)
    printed = capsys.readouterr()
    assert f"#/experiments/{experiment}/runs?workflowType=machine_learning" in printed.out
    assert "Postprocessing" not in printed.out + printed.err and "[1/2]" in printed.out + printed.err

    # resume: nothing finished runs again; the store keeps exactly one run per cell
    assert run(grid_path, workspace) == 0
    assert "0 cells finished, 2 already done" in capsys.readouterr().out
    assert len([r for r in store.runs(experiment) if r.cell_id]) == 2


def test_dry_run_writes_nothing(tiny_grid, workspace, capsys):
    grid_path = tiny_grid(axes="connector.tokens: [4, 16]")
    assert run(grid_path, workspace, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "2 cells" in out and "tokens=4" in out and "tokens=16" in out
    assert not (workspace.home / "mlflow.db").exists()


def test_bad_grid_exits_2_before_anything_runs(tiny_grid, workspace, capsys):
    grid_path = tiny_grid(axes="connector.name: [avg-pool, q-former]")
    assert run(grid_path, workspace) == 2
    err = capsys.readouterr().err
    assert "q-former" in err and "qformer" in err
    assert not (workspace.home / "mlflow.db").exists()
