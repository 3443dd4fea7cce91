"""Helpers for the runner tests: the store, runs per cell, the CLI as a child process."""
from __future__ import annotations

import sys


def store_for(workspace):

    from ablate.tracking.store import Store

    return Store(workspace.tracking_uri, workspace.artifacts)


def runs_by_cell(workspace, grid) -> dict[str, list]:
    """{cell_id: [RunRecord, ...]} oldest first."""
    store = store_for(workspace)
    experiment = store.experiment_id(grid, create=False)
    out: dict[str, list] = {}
    for record in sorted(store.runs(experiment) if experiment else [], key=lambda r: r.start_time):
        if record.cell_id:
            out.setdefault(record.cell_id, []).append(record)
    return out


def cli(workspace, *args) -> list[str]:
    return [sys.executable, "-m", "ablate.cli", "--home", str(workspace.home), "--reports", str(workspace.reports),
            *args]
