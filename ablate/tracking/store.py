"""The tracking store (MLflow): one experiment per grid, one run per cell. The one source of truth.

Tags on every run: `ablate.grid`, `ablate.cell_id`, `ablate.axis.<key>` (the label of each swept value).
Params: the cell config, flattened. Metrics: `train/loss` per step, `score/<task>/<k>shot` and their CIs.
A finished cell is a run with status FINISHED; resume skips it. A run left RUNNING by a killed process is closed as
KILLED before its cell runs again, so the store never holds two finished runs of one cell.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ablate.config.grid import Cell, Grid

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

CELL_TAG = "ablate.cell_id"
GRID_TAG = "ablate.grid"
AXIS_TAG = "ablate.axis."
REASON_TAG = "ablate.failure"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    cell_id: str
    status: str            # FINISHED / FAILED / RUNNING / KILLED
    start_time: int
    end_time: int | None
    metrics: dict
    tags: dict
    params: dict


class Store:
    def __init__(self, tracking_uri: str, artifact_root: Path):
        from mlflow.tracking import MlflowClient  # mlflow costs ~2 s to import: only when a store is used

        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root)
        self.client = MlflowClient(tracking_uri=tracking_uri)

    # ---- experiments and runs ----
    def experiment_id(self, grid: "Grid", create: bool = True) -> str | None:
        found = self.client.get_experiment_by_name(grid.name)
        if found is not None:
            return found.experiment_id
        if not create:
            return None
        served = self.tracking_uri.startswith(("http://", "https://"))   # a team's `mlflow server` keeps artifacts
        if not served:
            self.artifact_root.mkdir(parents=True, exist_ok=True)
        return self.client.create_experiment(
            grid.name, artifact_location=None if served else (self.artifact_root / grid.name).as_uri(),
            tags={"ablate.grid_file": str(grid.path), "mlflow.note.content": grid.description})

    def runs(self, experiment_id: str) -> list[RunRecord]:
        records, token = [], None
        while True:
            page = self.client.search_runs([experiment_id], max_results=1000, page_token=token)
            for run in page:
                records.append(RunRecord(run.info.run_id, run.data.tags.get(CELL_TAG, ""), run.info.status,
                                         run.info.start_time, run.info.end_time, dict(run.data.metrics),
                                         dict(run.data.tags), dict(run.data.params)))
            token = page.token
            if not token:
                return records

    def finished_cells(self, experiment_id: str) -> set[str]:
        return {r.cell_id for r in self.runs(experiment_id) if r.status == "FINISHED"}

    def close_stale(self, experiment_id: str, cell_id: str) -> list[str]:
        """Close runs of a cell left RUNNING by a process that died (the caller holds the cell's claim)."""
        closed = []
        for record in self.runs(experiment_id):
            if record.cell_id == cell_id and record.status == "RUNNING":
                self.client.set_tag(record.run_id, REASON_TAG, "process ended without closing the run (killed)")
                self.client.set_terminated(record.run_id, "KILLED")
                closed.append(record.run_id)
        return closed

    def start_run(self, experiment_id: str, grid: "Grid", cell: "Cell") -> "RunLogger":
        tags = {CELL_TAG: cell.id, GRID_TAG: grid.name, "mlflow.runName": cell.label() or cell.id,
                "mlflow.note.content": _cell_note(grid, cell)}
        tags.update({AXIS_TAG + k: str(v) for k, v in cell.axes.items()})
        run = self.client.create_run(experiment_id, tags=tags, run_name=cell.label() or cell.id)
        logger = RunLogger(self.client, run.info.run_id)
        logger.log_params(_flatten(cell.config.model_dump(mode="json")))
        logger.log_dict(json.loads(cell.config.canonical_json()), "cell_config.json")
        return logger

    def loss_curve(self, run_id: str, key: str = "train/loss") -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]


class RunLogger:
    """Logs to one run; step metrics are buffered and sent with log_batch (one call per flush)."""

    def __init__(self, client, run_id: str, flush_every: int = 25):
        self.client, self.run_id, self.flush_every = client, run_id, flush_every
        self._buffer: list = []

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_step(self, step: int, **values: float) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._buffer.extend(Metric(k, float(v), now, step) for k, v in values.items())
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self.client.log_batch(self.run_id, metrics=self._buffer)
            self._buffer = []

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        for key, value in metrics.items():
            self.log_step(step, **{key: value})
        self.flush()

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_dict(self, data, name: str) -> None:
        self.client.log_dict(self.run_id, data, name)

    def log_table(self, rows: list[dict], name: str) -> None:
        import pandas as pd

        self.client.log_table(self.run_id, data=pd.DataFrame(rows), artifact_file=name)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def log_text(self, text: str, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / name
            target.write_text(text)
            self.client.log_artifact(self.run_id, str(target))

    def finish(self, status: str = "FINISHED", reason: str | None = None) -> None:
        self.flush()
        if reason:
            self.client.set_tag(self.run_id, REASON_TAG, reason[:4000])
        self.client.set_terminated(self.run_id, status)


def _cell_note(grid: "Grid", cell: "Cell") -> str:
    """The run's description in the MLflow UI: which cell of which grid, and where to look."""
    values = ", ".join(f"{k} = {v}" for k, v in cell.axes.items()) or "no swept axes"
    return (f"Cell {cell.id} of grid '{grid.name}' ({grid.path}): {values}. Params: the full cell config "
            "(also cell_config.json). Metrics: score/<task>/<k>shot in 0..1 with ci_low/ci_high (95% bootstrap) "
            "and n (questions); per question type score/<task>/<k>shot/<type>; text/perplexity (lower is "
            "better); encoder/* (the zoo encoder's pre-training); train/loss per step. Artifacts: "
            "predictions.json (a sample of questions with the model's answers). The grid's report is the run "
            "named 'report: <grid>'.")


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and key not in ("mixture", "options"):
            out.update(_flatten(value, dotted))
        else:
            out[dotted] = json.dumps(value) if isinstance(value, (dict, list)) else value
    return out
