"""Where cells run. A runner file (runners/*.yaml) picks one; without one, cells run one after another here.

`load_runner(path)` returns an object with `.run(grid, workspace) -> GridOutcome`. Kinds: local, subprocess,
workers, multigpu, slurm (`ablate.runners.config`); docs/runners.md says what each does on a fault.
"""
from __future__ import annotations

from pathlib import Path

from ablate.runners.local import GridOutcome, LocalRunner, run_cells

__all__ = ["GridOutcome", "LocalRunner", "load_runner", "run_cells"]


def load_runner(path: str | Path | None):
    if path is None:
        return LocalRunner()
    from ablate.runners.config import load_runner_file

    return load_runner_file(Path(path))
