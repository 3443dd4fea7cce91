"""One cell in a process of its own: `python -m ablate.runners.child GRID CELL_ID --home H --tracking-uri U`.

What the subprocess, workers, multigpu and slurm runners start (argv and exit codes: `ablate.runners.protocol`).
The child reloads the grid file (so it needs nothing but the file and the workspace), takes the cell's claim, runs
it and records the outcome in the store. Exit codes: 0 finished, 3 failed (reason in the store), 4 held by another
process, 5 already finished (by another process), 2 the cell is not in the grid, 6 the store or the workspace
cannot be written (the grid stops), 130 Ctrl-C and 143 SIGTERM (run closed as KILLED).
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys

from ablate.runners import protocol

DISTRIBUTED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                   "ROLE_WORLD_SIZE", "GROUP_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def run_one(grid_path: str, cell_id: str, home: str, tracking_uri: str, reports: str | None = None) -> int:
    """Run one cell of a grid file under its claim; the exit code above."""
    from ablate.config.errors import GridError
    from ablate.progress import Progress
    from ablate.resolve import load_grid
    from ablate.runners.local import run_cells
    from ablate.tracking.store import StoreError
    from ablate.workspace import Workspace

    if "RANK" in os.environ:
        # Launched by accelerate/torchrun (runners/multigpu.yaml): only rank 0 talks to the store and trains.
        # ablate.train has no data-parallel step yet, so the other ranks have nothing to do, and rank 0 runs the
        # cell as a single process (else lmms-eval's Accelerator would wait for the idle ranks). docs/runners.md.
        if int(os.environ["RANK"]) != 0:
            logging.getLogger(__name__).warning("rank %s: idle (only rank 0 runs the cell)", os.environ["RANK"])
            return protocol.EXIT_FINISHED
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
        return protocol.EXIT_ERROR
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return protocol.EXIT_STORE
    except KeyboardInterrupt:
        return protocol.EXIT_INTERRUPTED
    except protocol.Terminated:
        return protocol.EXIT_TERMINATED
    if outcome.claimed_elsewhere:
        return protocol.EXIT_CLAIMED
    if outcome.skipped:
        return protocol.EXIT_SKIPPED
    return protocol.EXIT_FAILED if outcome.failed else protocol.EXIT_FINISHED


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the parent dies (no-op elsewhere); exit if it already has."""
    parent = os.environ.get(protocol.PARENT_ENV)
    if not parent:
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent) and "RANK" not in os.environ:   # under a launcher the parent is the launcher
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {protocol.CHILD_MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("grid")
    parser.add_argument("cell_id")
    parser.add_argument("--home", required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--reports")
    ns = parser.parse_args(argv)
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_one(ns.grid, ns.cell_id, ns.home, ns.tracking_uri, ns.reports)


if __name__ == "__main__":
    sys.exit(main())
