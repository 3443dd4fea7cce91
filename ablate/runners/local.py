"""Run cells one after another in this process (the default runner), and the pieces every runner shares.

A cell runs under its claim (a file lock, `claims.py`): before its run starts, runs of the cell left RUNNING by a
killed process are closed as KILLED; a finished cell is skipped. SIGTERM and Ctrl-C close the current run as KILLED
and end the process; SIGKILL leaves the run RUNNING, and the next `ablate run` closes it. Either way the cell
resumes from its last checkpoint.
"""
from __future__ import annotations

import logging
import signal
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ablate.config.errors import GridError
from ablate.config.grid import Cell, Grid
from ablate.models.features import FeatureCache
from ablate.progress import Progress
from ablate.runners.claims import claim
from ablate.tracking.store import Store
from ablate.workspace import Workspace

log = logging.getLogger(__name__)


class Terminated(KeyboardInterrupt):
    """SIGTERM: the run is closed as KILLED (like Ctrl-C), then the process ends (the CLI exits 130)."""


class StoreError(GridError):
    """The tracking store or the workspace cannot be written (read-only, full disk, server down)."""


@dataclass
class GridOutcome:
    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    claimed_elsewhere: list[str] = field(default_factory=list)

    def merge(self, other: "GridOutcome") -> None:
        self.finished += other.finished
        self.skipped += other.skipped
        self.failed.update(other.failed)
        self.claimed_elsewhere += other.claimed_elsewhere


def _raise_terminated(signum, frame):
    raise Terminated(f"signal {signum}")


@contextmanager
def sigterm_raises():
    """Turn SIGTERM into an exception for the duration (main thread only; elsewhere a no-op)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:   # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def open_store(workspace: Workspace, grid: Grid) -> tuple[Store, str]:
    """The store and the grid's experiment; a clear StoreError when either cannot be written."""
    try:
        store = Store(workspace.tracking_uri, workspace.artifacts)
        experiment = store.experiment_id(grid)
        for folder in (workspace.home / "claims", workspace.home / "checkpoints"):
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".write-probe"
            probe.write_text("ok")
            probe.unlink()
    except Exception as err:  # sqlite "readonly database", OSError ENOSPC/EACCES, connection refused ...
        raise StoreError(workspace.tracking_uri, f"cannot write the tracking store or the workspace "
                         f"{workspace.home} ({type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}); "
                         "check free disk space, permissions and that the tracking server is up, then run the same "
                         "command again (finished cells are kept)") from err
    return store, experiment


def run_claimed(store: Store, experiment: str, grid: Grid, cell: Cell, workspace: Workspace,
                feature_cache: FeatureCache | None = None, progress: Progress | None = None,
                outcome: GridOutcome | None = None) -> GridOutcome:
    """Run one cell whose claim the caller holds: close its stale runs, start a run, train/evaluate, close it."""
    from ablate.cell import run_cell
    from ablate.train.loop import Diverged

    outcome = outcome if outcome is not None else GridOutcome()
    if cell.id in store.finished_cells(experiment):   # finished while we waited for the claim
        outcome.skipped.append(cell.id)
        return outcome
    store.close_stale(experiment, cell.id)
    logger = store.start_run(experiment, grid, cell)
    try:
        scores = run_cell(cell, workspace, logger, feature_cache, progress)
    except KeyboardInterrupt as err:   # Ctrl-C, or SIGTERM (Terminated)
        logger.finish("KILLED", f"interrupted ({'SIGTERM' if isinstance(err, Terminated) else 'Ctrl-C'})")
        raise
    except Exception as err:  # one broken cell must not end the grid (Diverged carries its step and reason)
        reason = str(err) if isinstance(err, Diverged) else f"{type(err).__name__}: {err}"
        log.error("cell %s failed:\n%s", cell.id, traceback.format_exc())
        logger.finish("FAILED", reason)
        outcome.failed[cell.id] = reason
        scores = {}
    else:
        logger.finish("FINISHED")
        outcome.finished.append(cell.id)
    if progress:
        text = outcome.failed.get(cell.id) or "  ".join(
            f"{k.removeprefix('score/')} {v:.3f}" for k, v in scores.items() if k.startswith("score/"))
        progress.cell_finished(cell.label() or cell.id, ("FAILED: " if cell.id in outcome.failed else "") + text)
    return outcome


def run_cells(grid: Grid, cells: list[Cell], workspace: Workspace, progress: Progress | None = None,
              feature_cache: FeatureCache | None = None) -> GridOutcome:
    """Run `cells` one after another in this process, each under its claim; finished ones are skipped."""
    store, experiment = open_store(workspace, grid)
    outcome = GridOutcome()
    feature_cache = feature_cache if feature_cache is not None else FeatureCache()
    with sigterm_raises():
        for index, cell in enumerate(cells, 1):
            if cell.id in store.finished_cells(experiment):
                outcome.skipped.append(cell.id)
                if progress:
                    label = cell.label() or cell.id
                    progress.cell_finished(label, f"[{index}/{len(cells)}] {label}: already finished")
                continue
            with claim(claims_dir(workspace), cell.id) as mine:
                if not mine:
                    outcome.claimed_elsewhere.append(cell.id)
                    continue
                if progress:
                    progress.cell_started(index, cell.label() or cell.id, cell.config.train.steps)
                run_claimed(store, experiment, grid, cell, workspace, feature_cache, progress, outcome)
    return outcome


def claims_dir(workspace: Workspace) -> Path:
    return workspace.home / "claims"


@dataclass
class LocalRunner:
    """runners/local.yaml: one cell after another in this process (frozen-encoder features shared across cells)."""

    def run(self, grid: Grid, workspace: Workspace) -> GridOutcome:
        progress = Progress(len(grid.cells))
        try:
            return run_cells(grid, grid.cells, workspace, progress)
        finally:
            progress.close()
