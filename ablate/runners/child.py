"""One cell in a process of its own: `python -m ablate.runners.child GRID CELL_ID --home H --tracking-uri U`; or,
with `--serve FD` instead of GRID CELL_ID, a worker's process that runs the cells the parent names one after another.

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
from contextlib import contextmanager

from ablate.runners import protocol


def run_one(grid_path: str, cell_id: str, home: str, tracking_uri: str, reports: str | None = None,
            feature_cache=None) -> int:
    """Run one cell of a grid file under its claim; the exit code above. Under a launcher (RANK and WORLD_SIZE
    set, runners/multigpu.yaml) every rank trains: `run_rank`."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return run_rank(grid_path, cell_id, home, tracking_uri, reports)
    return run_claimed_cell(grid_path, cell_id, home, tracking_uri, reports, feature_cache)


def serve(home: str, tracking_uri: str, reports: str | None, results_fd: int) -> int:
    """A worker's process (runners/workers.yaml): cells one after another as the parent sends them, one line
    `<grid file>\t<cell id>\t<log file>` each on stdin; each cell's output goes to its own log and its exit code
    (as `run_one` returns it) is written as a line to `results_fd`. Ends at the end of its input, or after a cell
    that was interrupted or could not write the store. What the first cell loaded (torch, transformers, MLflow,
    lmms-eval) and a frozen encoder's features stay for the next cells: about 15 s a cell on 2 CPU cores."""
    from ablate.models.features import FeatureCache  # lazy: as in run_claimed_cell

    results = os.fdopen(results_fd, "w", buffering=1)
    feature_cache = FeatureCache()
    try:
        for count, line in enumerate(sys.stdin, 1):
            grid_path, cell_id, log_path = line.rstrip("\n").split("\t")
            with output_to(log_path):
                logging.getLogger(__name__).info("worker process %d: cell %s, its cell %d", os.getpid(), cell_id, count)
                code = run_one(grid_path, cell_id, home, tracking_uri, reports, feature_cache)
            results.write(f"{code}\n")
            if code in (protocol.EXIT_STORE, protocol.EXIT_INTERRUPTED, protocol.EXIT_TERMINATED):
                return code
    except KeyboardInterrupt:   # between cells: nothing to close
        return protocol.EXIT_INTERRUPTED
    return protocol.EXIT_FINISHED


@contextmanager
def output_to(path: str):
    """This process's stdout and stderr (file descriptors 1 and 2, so logging, progress and C libraries alike)
    appended to `path` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        _flush_quietly()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def run_rank(grid_path: str, cell_id: str, home: str, tracking_uri: str, reports: str | None = None) -> int:
    """One rank of a data-parallel cell (ablate.train.parallel).

    Rank 0 does what a single process does (claim, run, checkpoints, evaluation, the outcome in the store) and
    tells the other ranks whether the cell trains; they train their share of each batch, log nothing, and end
    when training ends (rank 0 evaluates alone). Rank 0's exit code is written to `$ABLATE_EXIT_FILE` for the
    launcher's wrapper (ablate.runners.multigpu), since torchrun reports any failure as 1."""
    # lazy, as in run_claimed_cell: the training stack loads after main() has tied this process to its parent
    from ablate.runners.multigpu import COLLECTIVE, EXIT_FILE_ENV
    from ablate.train import parallel

    log = logging.getLogger(__name__)
    parallel.init_from_env()
    if parallel.rank() == 0:
        code = protocol.EXIT_FAILED
        try:
            code = run_claimed_cell(grid_path, cell_id, home, tracking_uri, reports)
        finally:
            if parallel.active():
                parallel.announce("skip")   # the cell did not train here (finished, held elsewhere, bad grid)
            parallel.leave()
            if os.environ.get(EXIT_FILE_ENV):
                with open(os.environ[EXIT_FILE_ENV], "w") as f:
                    f.write(f"{code} {COLLECTIVE}" if parallel.collective_broke else str(code))
        return code
    try:
        decision = parallel.receive()
        if decision != "train":
            log.info("rank %d: rank 0 did not train the cell (%s)", parallel.rank(), decision)
            return protocol.EXIT_FINISHED
        from ablate.cell import SilentLogger, run_cell  # lazy: as above
        from ablate.resolve import load_grid
        from ablate.workspace import Workspace

        cell = next(c for c in load_grid(grid_path).cells if c.id == cell_id)
        log.info("rank %d of %d trains its share of cell %s", parallel.rank(), parallel.world_size(), cell_id)
        run_cell(cell, Workspace.create(home, tracking_uri, reports), SilentLogger())
    except KeyboardInterrupt:
        return protocol.EXIT_INTERRUPTED
    except protocol.Terminated:
        return protocol.EXIT_TERMINATED
    except Exception as err:   # noqa: BLE001 - rank 0 records the cell's outcome; this rank's traceback: the log
        from ablate.train.loop import Diverged  # lazy: as above

        if isinstance(err, Diverged):   # every rank sees the same global loss: rank 0 records why, undisturbed
            log.info("rank %d: %s (rank 0 records it)", parallel.rank(), err)
            return protocol.EXIT_FINISHED
        log.exception("rank %d failed", parallel.rank())
        if os.environ.get("TORCHELASTIC_ERROR_FILE"):   # what @record writes: torchrun's agent reads it
            from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

            ErrorHandler().record_exception(err)
        return protocol.EXIT_FAILED   # the launcher stops the other ranks
    finally:
        parallel.leave()
    return protocol.EXIT_FINISHED


def run_claimed_cell(grid_path: str, cell_id: str, home: str, tracking_uri: str, reports: str | None = None,
                     feature_cache=None) -> int:
    # lazy: main() first asks Linux to end this process with its parent; torch and the store load seconds later
    from ablate.config.errors import GridError
    from ablate.progress import Progress
    from ablate.resolve import load_grid
    from ablate.runners.local import run_cells
    from ablate.tracking.store import StoreError
    from ablate.workspace import Workspace

    try:
        grid = load_grid(grid_path)
        cells = [c for c in grid.cells if c.id == cell_id]
        if not cells:
            raise GridError(grid_path, f"no cell {cell_id} in this grid (was the file changed?)")
        workspace = Workspace.create(home, tracking_uri, reports)
        progress = Progress(1)
        try:
            outcome = run_cells(grid, cells, workspace, progress, feature_cache)
        finally:
            progress.close()
    except GridError as err:
        _say(f"error: {err}")
        return protocol.EXIT_ERROR
    except StoreError as err:
        _say(f"error: {err}")
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


def _flush_quietly() -> None:
    """Flush stdout and stderr; on a full disk (the cell's log) what they held is lost, the process goes on."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass


def _say(text: str) -> None:
    """A line on stderr (the cell's log) that a full disk cannot turn into an exception: the exit code says it."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


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
    parser.add_argument("grid", nargs="?")
    parser.add_argument("cell_id", nargs="?")
    parser.add_argument("--home", required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--reports")
    parser.add_argument("--serve", metavar="FD", type=int,
                        help="run the cells named on stdin, writing each one's exit code to this file descriptor")
    ns = parser.parse_args(argv)
    if (ns.serve is None) == (ns.cell_id is None):
        parser.error("give GRID and CELL_ID, or --serve FD")
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if ns.serve is not None:
            return serve(ns.home, ns.tracking_uri, ns.reports, ns.serve)
        return run_one(ns.grid, ns.cell_id, ns.home, ns.tracking_uri, ns.reports)
    except OSError as err:   # a full disk outside the cell (its log, its results): the store's exit code, not 1
        from ablate.runners.local import disk_fault  # lazy: as in run_claimed_cell

        if not disk_fault(err):
            raise
        _say(f"error: {ns.tracking_uri}: cannot write the workspace {ns.home} ({type(err).__name__}: {err})")
        return protocol.EXIT_STORE


if __name__ == "__main__":
    sys.exit(main())
