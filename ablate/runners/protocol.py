"""What a runner and a cell's own process agree on: the child's argv, its environment, its exit codes, and how
signals end a run. The parent side (process.py, slurm.py), the child (child.py) and the CLI import this; it
imports nothing of ablate.
"""
from __future__ import annotations

import signal
import sys
from contextlib import contextmanager

CHILD_MODULE = "ablate.runners.child"
PARENT_ENV = "ABLATE_PARENT_PID"      # the parent's pid: the child dies with it (child.die_with_parent)

EXIT_FINISHED = 0        # the cell finished
EXIT_ERROR = 2           # the cell is not in the grid (the file changed), or the grid file is invalid
EXIT_FAILED = 3          # the cell failed; the reason is in the store
EXIT_CLAIMED = 4         # another process holds the cell
EXIT_SKIPPED = 5         # another process finished the cell
EXIT_STORE = 6           # the store or the workspace cannot be written (full disk, read-only): the grid stops
EXIT_INTERRUPTED = 130   # Ctrl-C (SIGINT): the run was closed as KILLED (128 + 2)
EXIT_TERMINATED = 143    # SIGTERM: the run was closed as KILLED (128 + 15)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so the current run is closed as KILLED; the CLI then exits 143.

    A BaseException (like KeyboardInterrupt, but not one): `except Exception` in a cell does not swallow it, and
    Ctrl-C (130) and SIGTERM (143) stay apart."""


END_WITHIN_S = 30   # after SIGTERM, a process that has not ended by then is ended by the kernel (SIGALRM)


@contextmanager
def sigterm_raises(end_within_s: int = END_WITHIN_S):
    """Turn SIGTERM into `Terminated` for the duration (main thread only; elsewhere a no-op), and make sure the
    process ends: `Terminated` is raised wherever the main thread is, possibly inside a library holding a lock
    (SQLAlchemy's pool, logging) that closing the run then waits for. So SIGTERM also arms an alarm whose default
    action ends the process `end_within_s` seconds later: a child whose parent died (PR_SET_PDEATHSIG) has no one
    else to end it, and its claim must come free. A run left RUNNING is closed as KILLED by the next run."""
    def raise_terminated(signum, frame):
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(end_within_s)
        raise Terminated(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:   # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def child_args(grid_path, cell_id: str, workspace) -> list[str]:
    """The child's arguments after `-m ablate.runners.child`."""
    return [str(grid_path), cell_id, "--home", str(workspace.home), "--tracking-uri", workspace.tracking_uri,
            "--reports", str(workspace.reports)]


def child_argv(grid_path, cell_id: str, workspace, prefix: list[str] | None = None) -> list[str]:
    """The argv that runs one cell in a fresh interpreter; `prefix` replaces `python -m` (a launcher)."""
    return [*(prefix or [sys.executable, "-m"]), CHILD_MODULE, *child_args(grid_path, cell_id, workspace)]


def server_argv(workspace, results_fd: int, prefix: list[str] | None = None) -> list[str]:
    """The argv of a worker's process that runs the cells named on its stdin (`child.serve`), one exit code a line
    on `results_fd`."""
    return [*(prefix or [sys.executable, "-m"]), CHILD_MODULE, "--serve", str(results_fd), "--home",
            str(workspace.home), "--tracking-uri", workspace.tracking_uri, "--reports", str(workspace.reports)]
