"""Where cells run. A runner file (runners/*.yaml) picks one; the default runs cells one after another here."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ablate.config.grid import Grid
from ablate.runners.local import GridOutcome, run_cells
from ablate.workspace import Workspace


@dataclass
class LocalRunner:
    def run(self, grid: Grid, workspace: Workspace) -> GridOutcome:
        from ablate.progress import Progress

        progress = Progress(len(grid.cells))
        try:
            return run_cells(grid, grid.cells, workspace, progress)
        finally:
            progress.close()


def load_runner(path: str | Path | None):
    if path is None:
        return LocalRunner()
    from ablate.runners.config import load_runner_file

    return load_runner_file(Path(path))
