"""One cell in a process of its own: `python -m ablate.runners.child GRID CELL_ID --home H --tracking-uri U`.

What the subprocess, workers, multigpu and slurm runners start. The child reloads the grid file (so it needs
nothing but the file and the workspace), takes the cell's claim, runs it and records the outcome in the store.
Exit codes: 0 finished, 3 failed (reason in the store), 4 held by another process, 5 already finished (by
another process), 2 the cell is not in the grid or the store cannot be written, 130 interrupted (run KILLED).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

DISTRIBUTED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                   "ROLE_WORLD_SIZE", "GROUP_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
EXIT_FINISHED, EXIT_ERROR, EXIT_FAILED, EXIT_CLAIMED, EXIT_SKIPPED, EXIT_INTERRUPTED = 0, 2, 3, 4, 5, 130


def command(grid_path, cell_id: str, workspace, python: str | None = None) -> list[str]:
    """The argv that runs one cell in a fresh interpreter."""
    return [python or sys.executable, "-m", "ablate.runners.child", *args(grid_path, cell_id, workspace)]


def args(grid_path, cell_id: str, workspace) -> list[str]:
    return [str(grid_path), cell_id, "--home", str(workspace.home), "--tracking-uri", workspace.tracking_uri,
            "--reports", str(workspace.reports)]


def run_one(grid_path: str, cell_id: str, home: str, tracking_uri: str, reports: str | None = None) -> int:
    """Run one cell of a grid file under its claim; the exit code above."""
    from ablate.config.errors import GridError
    from ablate.progress import Progress
    from ablate.resolve import load_grid
    from ablate.runners.local import Terminated, run_cells
    from ablate.workspace import Workspace

    if "RANK" in os.environ:
        # Launched by accelerate/torchrun (runners/multigpu.yaml): only rank 0 talks to the store and trains.
        # ablate.train has no data-parallel step yet, so the other ranks have nothing to do, and rank 0 runs the
        # cell as a single process (else lmms-eval's Accelerator would wait for the idle ranks). docs/runners.md.
        if int(os.environ["RANK"]) != 0:
            logging.getLogger(__name__).warning("rank %s: idle (only rank 0 runs the cell)", os.environ["RANK"])
            return EXIT_FINISHED
        for key in DISTRIBUTED_ENV:
            os.environ.pop(key, None)
    try:
        grid = load_grid(grid_path)
        cells = [c for c in grid.cells if c.id == cell_id]
        if not cells:
            raise GridError(grid_path, f"no cell {cell_id} in this grid (was the file changed?)")
        workspace = Workspace.create(home, tracking_uri, reports)
        progress = Progress(1)
        try:
            outcome = run_cells(grid, cells, workspace, progress)
        finally:
            progress.close()
    except GridError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except (KeyboardInterrupt, Terminated):
        return EXIT_INTERRUPTED
    if outcome.claimed_elsewhere:
        return EXIT_CLAIMED
    if outcome.skipped:
        return EXIT_SKIPPED
    return EXIT_FAILED if outcome.failed else EXIT_FINISHED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablate.runners.child", description=__doc__.splitlines()[0])
    parser.add_argument("grid")
    parser.add_argument("cell_id")
    parser.add_argument("--home", required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--reports")
    ns = parser.parse_args(argv)
    from ablate.runners.process import die_with_parent

    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_one(ns.grid, ns.cell_id, ns.home, ns.tracking_uri, ns.reports)


if __name__ == "__main__":
    sys.exit(main())
