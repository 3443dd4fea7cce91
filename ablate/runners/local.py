"""Run cells one after another in this process (the default runner), and the pieces every runner shares.

A cell runs under its claim (a file lock, `claims.py`): before its run starts, runs of the cell left RUNNING by a
killed process are closed as KILLED; a finished cell is skipped. SIGTERM and Ctrl-C close the current run as KILLED
and end the process (the CLI exits 143 and 130); SIGKILL leaves the run RUNNING, and the next `ablate run` closes
it. Either way the cell resumes from its last checkpoint. A full disk, or a store that stops taking writes, stops
the grid with one `StoreError` (finished cells are kept); any other error fails its cell only.
"""
from __future__ import annotations

import errno
import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ablate.config.grid import Cell, Grid
from ablate.models.features import FeatureCache
from ablate.progress import Progress
from ablate.runners.claims import claim
from ablate.runners.protocol import EXIT_CLAIMED, EXIT_FINISHED, EXIT_SKIPPED, Terminated, sigterm_raises
from ablate.tracking.store import Store, StoreError
from ablate.workspace import Workspace

log = logging.getLogger(__name__)

DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
DISK_MESSAGES = ("database or disk is full", "no space left on device", "disk quota exceeded",
                 "readonly database", "read-only file system")


@dataclass
class GridOutcome:
    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    claimed_elsewhere: list[str] = field(default_factory=list)   # held by another process: not run here
    submitted: list[str] = field(default_factory=list)           # handed to a scheduler that runs them later

    def settled(self, rc: int, cell_id: str) -> bool:
        """Record a cell process's exit code that needs no reason (finished, held by another process, done
        already); False for any other code, which the runner explains itself."""
        lists = {EXIT_FINISHED: self.finished, EXIT_CLAIMED: self.claimed_elsewhere, EXIT_SKIPPED: self.skipped}
        if rc not in lists:
            return False
        lists[rc].append(cell_id)
        return True

    def merge(self, other: "GridOutcome") -> None:
        self.finished += other.finished
        self.skipped += other.skipped
        self.failed.update(other.failed)
        self.claimed_elsewhere += other.claimed_elsewhere
        self.submitted += other.submitted


def open_store(workspace: Workspace, grid: Grid) -> tuple[Store, str]:
    """The store and the grid's experiment; a clear StoreError when either cannot be written."""
    try:
        store = Store(workspace.tracking_uri, workspace.artifacts)
        experiment = store.experiment_id(grid)
        store.check_writable()
        for folder in (workspace.home / "claims", workspace.home / "checkpoints"):
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".write-probe"
            probe.write_text("ok")
            probe.unlink()
    except StoreError:
        raise
    except Exception as err:  # sqlite "readonly database", OSError ENOSPC/EACCES, connection refused ...
        raise StoreError(workspace.tracking_uri, f"cannot write the tracking store or the workspace "
                         f"{workspace.home} ({one_line(err)}); check free disk space, permissions and that the "
                         "tracking server is up, then run the same command again (finished cells are kept)") from err
    return store, experiment


def disk_fault(err: BaseException) -> bool:
    """Whether an error (or one it was raised from) says the disk is full or read-only: every later cell would
    fail the same way, so the grid stops instead of failing cell after cell."""
    seen = 0
    while err is not None and seen < 20:
        if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
            return True
        if any(text in str(err).lower() for text in DISK_MESSAGES):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def stopped(workspace: Workspace, cell: Cell, err: BaseException) -> StoreError:
    """The one error that ends a grid when the store or the workspace stops taking writes."""
    return StoreError(workspace.tracking_uri, f"the grid stopped at cell {cell.id}: cannot write the store or the "
                      f"workspace {workspace.home} ({one_line(err)}); free disk space (or fix permissions) and run "
                      "the same command again: finished cells are kept, this one resumes from its last checkpoint")


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


def _close_quietly(logger, status: str, reason: str) -> None:
    """Close a run on the way out of an interrupt or a fault: a store that fails here must not hide why."""
    try:
        logger.finish(status, reason)
    except Exception as err:  # noqa: BLE001 - the next run closes the stale run (close_stale)
        log.info("could not close run %s as %s (%s)", logger.run_id, status, one_line(err))


def run_claimed(store: Store, experiment: str, grid: Grid, cell: Cell, workspace: Workspace,
                feature_cache: FeatureCache | None = None, progress: Progress | None = None,
                outcome: GridOutcome | None = None) -> GridOutcome:
    """Run one cell whose claim the caller holds: close its stale runs, start a run, train/evaluate, close it.

    Raises StoreError (and the grid stops) when the store or the disk fails; any other error fails the cell."""
    # lazy: `ablate run --dry-run` builds this runner to validate a grid; the training stack (torch, transformers,
    # peft, datasets: seconds) loads only when a cell runs
    from ablate.cell import run_cell
    from ablate.train.loop import Diverged

    outcome = outcome if outcome is not None else GridOutcome()
    try:
        if cell.id in store.finished_cells(experiment):   # finished while we waited for the claim
            outcome.skipped.append(cell.id)
            return outcome
        store.close_stale(experiment, cell.id)
        logger = store.start_run(experiment, grid, cell)
    except Exception as err:
        raise stopped(workspace, cell, err) from err
    try:
        scores = run_cell(cell, workspace, logger, feature_cache, progress)
    except (KeyboardInterrupt, Terminated) as err:
        _close_quietly(logger, "KILLED", f"interrupted ({'SIGTERM' if isinstance(err, Terminated) else 'Ctrl-C'})")
        raise
    except Exception as err:  # one broken cell must not end the grid (Diverged carries its step and reason)
        if disk_fault(err):
            _close_quietly(logger, "FAILED", f"stopped: {one_line(err)}")
            raise stopped(workspace, cell, err) from err
        reason = str(err) if isinstance(err, Diverged) else f"{type(err).__name__}: {err}"
        log.error("cell %s failed:\n%s", cell.id, traceback.format_exc())
        try:
            logger.finish("FAILED", reason)
        except Exception as store_err:
            raise stopped(workspace, cell, store_err) from store_err
        outcome.failed[cell.id] = reason
        scores = {}
    else:
        try:
            logger.finish("FINISHED")
        except Exception as store_err:
            raise stopped(workspace, cell, store_err) from store_err
        if not cell.config.train.keep_resume_state:   # once FINISHED is recorded: `final/` is all it needs
            from ablate.checkpoint import drop_resume_state  # lazy: as run_cell above
            drop_resume_state(workspace.checkpoints(cell.id))
        outcome.finished.append(cell.id)
    if progress:
        text = outcome.failed.get(cell.id) or "  ".join(
            f"{k.removeprefix('score/')} {v:.3f}" for k, v in scores.items() if k.startswith("score/"))
        progress.cell_finished(cell.label(), ("FAILED: " if cell.id in outcome.failed else "") + text,
                               wall_s=scores.get("wall_s"))
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
