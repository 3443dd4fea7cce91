"""Read a grid's results back from the store: the frame that reports are built from."""
from __future__ import annotations

import pandas as pd

from ablate.config.grid import Grid
from ablate.tracking.store import REASON_TAG, RunRecord, Store

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
    """One row per cell of the grid (MISSING where the store has no run), and the loss curves by cell id."""
    experiment = store.experiment_id(grid, create=False)
    records = latest_per_cell(store.runs(experiment)) if experiment else {}
    rows, curves = [], {}
    for cell in grid.cells:
        record = records.get(cell.id)
        row = {"cell_id": cell.id, **{axis: cell.axes.get(axis) for axis in grid.axes}, "seed": cell.config.train.seed}
        if record is None:
            row.update(status="MISSING", failure="")
        else:
            row.update(status=record.status, failure=record.tags.get(REASON_TAG, ""), run_id=record.run_id)
            row.update({k: v for k, v in record.metrics.items() if not k.startswith("train/")})
            if with_curves:
                curves[cell.id] = store.loss_curve(record.run_id)
        rows.append(row)
    return pd.DataFrame(rows), curves
