"""Where cells run. A runner file (runners/*.yaml) picks one; without one, a `workers` runner with its defaults:
one worker per GPU (or per CPU core without a GPU), each with a process of its own that runs its cells one after
another.

`load_runner(path)` returns an object with `.run(grid, workspace) -> GridOutcome`. Kinds: local, subprocess,
workers, multigpu, slurm (`ablate.runners.config`); docs/runners.md says what each does on a fault.
`ablate.runners.protocol` (exit codes, signals) is light: this package loads its runners, which import torch,
only when one of them is asked for (the CLI imports the protocol on every command).
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["GridOutcome", "LocalRunner", "load_runner", "run_cells"]


def load_runner(path: str | Path | None):
    from ablate.runners.config import WorkersConfig, build_runner, load_runner_file

    if path is None:
        return build_runner(WorkersConfig(kind="workers"))
    return load_runner_file(Path(path))


def __getattr__(name: str):
    if name in ("GridOutcome", "LocalRunner", "run_cells"):   # torch comes with them: loaded on first use
        from ablate.runners import local

        return getattr(local, name)
    raise AttributeError(f"module 'ablate.runners' has no attribute {name!r}")
