"""Run cells one after another in this process (the default runner)."""
from __future__ import annotations

import logging
import signal
import traceback
from dataclasses import dataclass, field

from ablate.config.grid import Cell, Grid
from ablate.models.features import FeatureCache
from ablate.progress import Progress
from ablate.runners.claims import claim
from ablate.tracking.store import Store
from ablate.workspace import Workspace

log = logging.getLogger(__name__)


class Terminated(BaseException):
    """SIGTERM: the run is closed as KILLED (like Ctrl-C), then the process ends."""


@dataclass
class GridOutcome:
    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    claimed_elsewhere: list[str] = field(default_factory=list)


def _raise_terminated(signum, frame):
    raise Terminated(f"signal {signum}")


def run_cells(grid: Grid, cells: list[Cell], workspace: Workspace, progress: Progress | None = None,
              feature_cache: FeatureCache | None = None) -> GridOutcome:
    from ablate.cell import run_cell
    from ablate.train.loop import Diverged

    store = Store(workspace.tracking_uri, workspace.artifacts)
    experiment = store.experiment_id(grid)
    outcome = GridOutcome()
    feature_cache = feature_cache if feature_cache is not None else FeatureCache()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        for index, cell in enumerate(cells, 1):
            if cell.id in store.finished_cells(experiment):
                outcome.skipped.append(cell.id)
                if progress:
                    progress.cell_finished(cell.label(), f"[{index}/{len(cells)}] {cell.label()}: already finished")
                continue
            with claim(workspace.home / "claims", cell.id) as mine:
                if not mine:
                    outcome.claimed_elsewhere.append(cell.id)
                    continue
                if cell.id in store.finished_cells(experiment):   # finished while we waited for the claim
                    outcome.skipped.append(cell.id)
                    continue
                store.close_stale(experiment, cell.id)
                logger = store.start_run(experiment, grid, cell)
                if progress:
                    progress.cell_started(index, cell.label() or cell.id, cell.config.train.steps)
                try:
                    scores = run_cell(cell, workspace, logger, feature_cache, progress)
                except Diverged as err:
                    logger.finish("FAILED", str(err))
                    outcome.failed[cell.id] = str(err)
                except (KeyboardInterrupt, Terminated) as err:
                    logger.finish("KILLED", f"interrupted ({type(err).__name__})")
                    raise
                except Exception as err:  # one broken cell must not end the grid
                    reason = f"{type(err).__name__}: {err}"
                    log.error("cell %s failed:\n%s", cell.id, traceback.format_exc())
                    logger.finish("FAILED", reason)
                    outcome.failed[cell.id] = reason
                else:
                    logger.finish("FINISHED")
                    outcome.finished.append(cell.id)
                if progress:
                    text = outcome.failed.get(cell.id) or "  ".join(
                        f"{k.removeprefix('score/')} {v:.3f}" for k, v in scores.items() if k.startswith("score/"))
                    progress.cell_finished(cell.label(), ("FAILED: " if cell.id in outcome.failed else "") + text)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return outcome
