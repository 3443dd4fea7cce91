"""Read a grid's results back from the store: the frame that reports are built from, and each run's logged
sample of predictions."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from ablate.config.grid import Grid
from ablate.tracking.store import REASON_TAG, RunRecord, Store

ENV_TAG = "ablate.env."   # `ablate.record.ENV_TAG` (tracking sits below record in the layers)

STATUS_ORDER = {"FINISHED": 0, "RUNNING": 1, "FAILED": 2, "KILLED": 3}


def latest_per_cell(records: list[RunRecord]) -> dict[str, RunRecord]:
    """The run that speaks for each cell: a finished one if any, else the most recent attempt."""
    best: dict[str, RunRecord] = {}
    for record in records:
        current = best.get(record.cell_id)
        key = (STATUS_ORDER.get(record.status, 9), -record.start_time)
        if current is None or key < (STATUS_ORDER.get(current.status, 9), -current.start_time):
            best[record.cell_id] = record
    return best


def results_frame(store: Store, grid: Grid, with_curves: bool = True):
    """One row per cell of the grid (MISSING where the store has no run), and the loss curves by cell id.

    Besides the swept axes and the run's metrics (not the per-step `train/*`), a row holds `encoder.name` (the
    cell's encoder spec, swept or not: the report's encoder table is keyed by it), `run_id`, and `start_ms` /
    `end_ms` (the run's start and end, ms since the epoch), and the run record's `ablate.env.*` tags (versions,
    commit, machine, data digest: `ablate.record`)."""
    experiment = store.experiment_id(grid, create=False)
    records = latest_per_cell(store.runs(experiment)) if experiment else {}
    rows, curves = [], {}
    for cell in grid.cells:
        record = records.get(cell.id)
        row = {"cell_id": cell.id, **{axis: cell.axes.get(axis) for axis in grid.axes}, "seed": cell.config.train.seed}
        row.setdefault("encoder.name", cell.config.encoder.name)
        if record is None:
            row.update(status="MISSING", failure="")
        else:
            row.update(status=record.status, failure=record.tags.get(REASON_TAG, ""), run_id=record.run_id,
                       start_ms=record.start_time, end_ms=record.end_time)
            row.update({k: v for k, v in record.metrics.items() if not k.startswith("train/")})
            row.update({k: v for k, v in record.tags.items() if k.startswith(ENV_TAG)})   # the run record's
            if with_curves:
                curves[cell.id] = store.loss_curve(record.run_id)
        rows.append(row)
    return pd.DataFrame(rows), curves


def read_predictions(store: Store, run_id: str, name: str = "predictions.json") -> pd.DataFrame | None:
    """A run's logged sample of predictions (an MLflow table: task, shots, id, image, question, prediction,
    references, correct, type), or None when the run has none."""
    table = read_json_artifact(store, run_id, name)
    if table is None:
        return None
    return pd.DataFrame(table["data"], columns=table["columns"])


def read_json_artifact(store: Store, run_id: str, name: str):
    """A JSON artifact of a run at the top of its artifacts (e.g. `cell_config.json`), or None when it has none."""
    if not any(a.path == name for a in store.client.list_artifacts(run_id)):
        return None
    root = store.client.get_run(run_id).info.artifact_uri
    if root.startswith("file:"):  # a local store: read in place (no download, no progress bar)
        return json.loads((Path(unquote(urlparse(root).path)) / name).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(store.client.download_artifacts(run_id, name, tmp)).read_text())


DURING = "during/"   # mid-training scores (`eval.every`, ablate.evaluation.during)


def score_curves(store: Store, frame: pd.DataFrame) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Cell id -> {`during/<task>/<k>shot`: [(step, score), ...]} for the finished runs that logged mid-training
    scores (the frame's columns say which metrics a run has)."""
    metrics = [c for c in frame.columns if isinstance(c, str) and c.startswith(DURING)]
    out = {}
    if not metrics or "run_id" not in frame:
        return out
    for row in frame[frame["status"] == "FINISHED"].to_dict("records"):
        curves = {m: store.loss_curve(row["run_id"], m) for m in metrics if pd.notna(row.get(m))}
        if any(curves.values()):
            out[row["cell_id"]] = curves
    return out
