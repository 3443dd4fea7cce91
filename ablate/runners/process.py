"""Cells in processes of their own: runners/subprocess.yaml (one at a time) and runners/workers.yaml (N at once).

With `subprocess`, each cell runs in a fresh `python -m ablate.runners.child`; with `workers`, each worker keeps
one such process and hands it its cells one after another (`child.serve`: what it loaded and a frozen encoder's
features stay), and starts a fresh one after a cell that took its process down. A cell's output goes to
`<home>/logs/<grid>/<cell>.log`. The parent watches the process: a crash, an out-of-memory kill (SIGKILL) or a hang
past `time_limit_s` marks that cell FAILED with the reason in the store, and the grid goes on. The child takes the
cell's claim (a file lock), so no two workers, nor two `ablate run` started by mistake, run one cell. A child dies
with its parent (Linux PR_SET_PDEATHSIG), so killing `ablate run` never leaves a cell training unseen.
"""
from __future__ import annotations

import logging
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ablate.config.grid import Cell, Grid
from ablate.progress import Progress
from ablate.runners import protocol
from ablate.runners.claims import claim
from ablate.runners.local import GridOutcome, claims_dir, one_line, open_store
from ablate.runners.protocol import Terminated, sigterm_raises
from ablate.tracking.store import REASON_TAG, Store, StoreError, quiet_mlflow
from ablate.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class Slot:
    """Where one worker's cells run: extra environment (CUDA_VISIBLE_DEVICES, thread counts)."""

    name: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class ProcessRunner:
    """Run each cell in a child process, `len(slots)` at a time; the grid goes on whatever a child does."""

    slots: list[Slot]
    time_limit_s: float | None = None
    grace_s: float = 10.0
    env: dict[str, str] = field(default_factory=dict)
    python: str | None = None
    launcher: list[str] | None = None          # argv before the child's module (multigpu: accelerate / torchrun)
    reuse: bool = False                         # a worker's process runs its cells one after another (workers)

    def __post_init__(self):
        self._children: dict[int, subprocess.Popen] = {}
        self._servers: dict[str, _Server] = {}     # slot name -> the process that runs its cells (reuse)
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def run(self, grid: Grid, workspace: Workspace) -> GridOutcome:
        self._stop.clear()
        store, experiment = open_store(workspace, grid)
        outcome = GridOutcome()
        finished = store.finished_cells(experiment)
        todo: queue.Queue[tuple[int, Cell]] = queue.Queue()
        pending = []
        for index, cell in enumerate(grid.cells, 1):
            if cell.id in finished:
                outcome.skipped.append(cell.id)
            else:
                pending.append((index, cell))
        if len(self.slots) > 1:   # the dearest first, so that the last cells to start are short ones
            pending.sort(key=lambda item: -expected_cost(item[1]))
        for item in pending:
            todo.put(item)
        progress = Progress(len(grid.cells), done=len(outcome.skipped),
                            costs={cell.label() or cell.id: expected_cost(cell) for _, cell in pending})
        errors: list[BaseException] = []

        def work(slot: Slot) -> None:
            try:
                while not self._stop.is_set():
                    try:
                        index, cell = todo.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        result = self.run_cell(grid, cell, workspace, store, experiment, slot, progress, index)
                    except BaseException as err:  # noqa: BLE001 - reported by the main thread
                        errors.append(err)
                        self._stop.set()          # no new cells (a StoreError: the disk is full, the store is gone)
                        return
                    with self._lock:
                        outcome.merge(result)
            finally:
                self._close_server(slot)

        threads = [threading.Thread(target=work, args=(slot,), name=f"ablate-worker-{slot.name}", daemon=True)
                   for slot in self.slots]
        try:
            with sigterm_raises(protocol.END_WITHIN_S + int(self.grace_s)):   # room to stop the children
                for thread in threads:
                    thread.start()
                while any(t.is_alive() for t in threads):
                    for thread in threads:
                        thread.join(timeout=0.2)
        except (KeyboardInterrupt, Terminated) as err:
            self._stop.set()
            self.stop_children(signal.SIGINT if isinstance(err, KeyboardInterrupt) else signal.SIGTERM)
            for thread in threads:
                thread.join(timeout=self.grace_s + 5)
            raise
        finally:
            progress.close()
        if errors:
            raise errors[0]
        return outcome

    # ---- one cell ----
    def run_cell(self, grid: Grid, cell: Cell, workspace: Workspace, store: Store, experiment: str, slot: Slot,
                 progress: Progress | None = None, index: int = 0) -> GridOutcome:
        outcome = GridOutcome()
        log_path = workspace.home / "logs" / grid.name / f"{cell.id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if progress:
            progress.cell_started(index, cell.label() or cell.id, where=f"on {slot.name} (log {log_path})")
        started = time.monotonic()
        if self.reuse and self.launcher is None:
            rc, timed_out = self._run_in_server(slot, grid, cell, workspace, log_path)
        else:
            argv = protocol.child_argv(grid.path, cell.id, workspace, self._prefix())
            with open(log_path, "ab") as log_file:
                proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=self._env(slot),
                                        start_new_session=True)
                with self._lock:
                    self._children[proc.pid] = proc
                try:
                    rc, timed_out = self._wait(proc)
                finally:
                    with self._lock:
                        self._children.pop(proc.pid, None)
        wall = time.monotonic() - started
        if self._stop.is_set():
            return outcome
        if rc == protocol.EXIT_STORE:       # the child could not write the store or the disk: the grid stops
            raise StoreError(workspace.tracking_uri, _error_line(log_path, workspace.tracking_uri) or
                             f"the grid stopped at cell {cell.id}: its process could not write the store or the "
                             f"workspace (a full disk, a read-only file system: its log {log_path} could not be "
                             "written either); free disk space and run the same command again: finished cells are "
                             "kept")
        try:
            with quiet_mlflow():   # a failure here is the one StoreError below, not MLflow's tracebacks too
                self._record(rc, timed_out, wall, grid, cell, workspace, store, experiment, log_path, outcome)
        except Exception as err:   # the store stopped taking writes (or reads) here, in the parent
            raise StoreError(workspace.tracking_uri, f"the grid stopped at cell {cell.id}: cannot read or write the "
                             f"store ({one_line(err)}); finished cells are kept, run the same command again") from err
        if progress:
            text = outcome.failed.get(cell.id)
            progress.cell_finished(cell.label() or cell.id, f"FAILED: {text}" if text else
                                   "held by another process" if outcome.claimed_elsewhere else
                                   "finished elsewhere" if outcome.skipped else "",
                                   ran=not (outcome.claimed_elsewhere or outcome.skipped),
                                   wall_s=logged_wall(store, experiment, cell.id) if outcome.finished else None)
        return outcome

    def _record(self, rc: int, timed_out: bool, wall: float, grid: Grid, cell: Cell, workspace: Workspace,
                store: Store, experiment: str, log_path: Path, outcome: GridOutcome) -> None:
        """What the child's exit code says, into `outcome` (and the store, for a child that died)."""
        if (rc != protocol.EXIT_FINISHED or not timed_out) and outcome.settled(rc, cell.id):
            return
        if rc == protocol.EXIT_FAILED:
            outcome.failed[cell.id] = latest_reason(store, experiment, cell.id) or f"failed (see {log_path})"
        else:
            reason = crash_reason(rc, timed_out, self.time_limit_s, wall, log_path)
            close_crashed(store, experiment, grid, cell, reason, claims_dir(workspace))
            outcome.failed[cell.id] = reason

    def _prefix(self) -> list[str]:
        return self.launcher or [self.python or sys.executable, "-m"]

    def _env(self, slot: Slot) -> dict[str, str]:
        return {**os.environ, **self.env, **slot.env, protocol.PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}

    # ---- a worker's process, reused from cell to cell ----
    def _run_in_server(self, slot: Slot, grid: Grid, cell: Cell, workspace: Workspace,
                       log_path: Path) -> tuple[int, bool]:
        """The cell's exit code from the slot's process (started if it has none), and whether it timed out. A
        process that died, hung or was told to stop is dropped: the slot's next cell starts a fresh one."""
        server = self._servers.get(slot.name)
        if server is None:
            server = self._servers[slot.name] = self._start_server(slot, workspace, log_path.parent)
        try:
            server.proc.stdin.write(f"{grid.path}\t{cell.id}\t{log_path}\n".encode())
            server.proc.stdin.flush()
        except BrokenPipeError:   # it died between cells: what it said is in its own log
            pass
        rc, timed_out, alive = self._wait_server(server)
        if not alive or rc in (protocol.EXIT_STORE, protocol.EXIT_INTERRUPTED, protocol.EXIT_TERMINATED):
            self._close_server(slot)
        return rc, timed_out

    def _start_server(self, slot: Slot, workspace: Workspace, logs: Path) -> _Server:
        read_fd, write_fd = os.pipe()
        argv = protocol.server_argv(workspace, write_fd, self._prefix())
        with open(logs / f"worker-{slot.name}.log", "ab") as log_file:   # its output between cells
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT,
                                    env=self._env(slot), start_new_session=True, pass_fds=(write_fd,))
        os.close(write_fd)
        with self._lock:
            self._children[proc.pid] = proc
        return _Server(proc, os.fdopen(read_fd, "rb"))

    def _wait_server(self, server: _Server) -> tuple[int, bool, bool]:
        """(exit code, timed out, process still alive) of the cell the server is running."""
        deadline = None if self.time_limit_s is None else time.monotonic() + self.time_limit_s
        while True:
            ready, _, _ = select.select([server.results], [], [], 0.5)
            if ready:
                line = server.results.readline()
                if line:
                    return int(line), False, True
                rc = server.proc.wait()   # the end of its results: the process ended during the cell
                return (rc if rc != protocol.EXIT_FINISHED else 1), False, False
            if deadline is not None and time.monotonic() > deadline:
                _kill_group(server.proc, signal.SIGKILL)   # a hang may not answer SIGTERM: no grace
                return server.proc.wait(), True, False

    def _close_server(self, slot: Slot) -> None:
        server = self._servers.pop(slot.name, None)
        if server is None:
            return
        try:
            server.proc.stdin.close()   # the end of its input: it exits after the cell it runs, if any
        except OSError:
            pass
        try:
            server.proc.wait(timeout=self.grace_s + 5)
        except subprocess.TimeoutExpired:
            _kill_group(server.proc, signal.SIGKILL)
            server.proc.wait()
        server.results.close()
        with self._lock:
            self._children.pop(server.proc.pid, None)

    def _wait(self, proc: subprocess.Popen) -> tuple[int, bool]:
        deadline = None if self.time_limit_s is None else time.monotonic() + self.time_limit_s
        while True:
            try:
                return proc.wait(timeout=0.5), False
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() > deadline:
                    _kill_group(proc, signal.SIGKILL)   # a hang may not answer SIGTERM: no grace
                    return proc.wait(), True

    def stop_children(self, sig: int) -> None:
        """Forward an interrupt to every child (each closes its run as KILLED); SIGKILL those that linger."""
        with self._lock:
            children = list(self._children.values())
        for proc in children:
            _kill_group(proc, sig)
        deadline = time.monotonic() + self.grace_s
        for proc in children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait()


def expected_cost(cell: Cell) -> int:
    """What orders the cells when several run at once: training steps x visual tokens per image (a cell's time grows
    with both). Only the order changes; each cell keeps its index in the grid."""
    return cell.config.train.steps * cell.config.connector.tokens


@dataclass
class _Server:
    """A worker's process (`child.serve`): cells go in on its stdin, exit codes come back on `results`."""

    proc: subprocess.Popen
    results: object   # the read end of its results pipe (binary file)


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def crash_reason(rc: int, timed_out: bool, limit: float | None, wall: float, log_path: Path) -> str:
    if timed_out:
        return f"time limit exceeded: still running after {limit:g} s (time_limit_s), killed; log {log_path}"
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        hint = " (the kernel's out-of-memory killer sends SIGKILL)" if -rc == signal.SIGKILL else ""
        return f"the cell's process was killed by {name}{hint} after {wall:.0f} s; log {log_path}"
    return f"the cell's process exited with code {rc}: {_last_line(log_path)}; log {log_path}"


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"


def _error_line(path: Path, tracking_uri: str) -> str | None:
    """The message of the child's last `error: <uri>: ...` line (its StoreError), or None."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.startswith("error: ")]
    except OSError:
        return None
    return lines[-1].removeprefix("error: ").removeprefix(f"{tracking_uri}: ")[:1000] if lines else None


def latest_reason(store: Store, experiment: str, cell_id: str) -> str | None:
    runs = sorted((r for r in store.runs(experiment) if r.cell_id == cell_id), key=lambda r: r.start_time)
    return runs[-1].tags.get(REASON_TAG) if runs else None


def logged_wall(store: Store, experiment: str, cell_id: str) -> float | None:
    """The wall time the cell's latest run logged (`wall_s`: the report's figure), or None."""
    runs = sorted((r for r in store.runs(experiment) if r.cell_id == cell_id), key=lambda r: r.start_time)
    return runs[-1].metrics.get("wall_s") if runs else None


def close_crashed(store: Store, experiment: str, grid: Grid, cell: Cell, reason: str, lock_dir: Path) -> None:
    """Mark the run a dead child left RUNNING as FAILED with the reason (a new FAILED run if it died before
    starting one), only while no one else holds the cell."""
    with claim(lock_dir, cell.id) as mine:
        if not mine:
            return
        if not store.close_running(experiment, cell.id, "FAILED", reason):
            store.start_run(experiment, grid, cell).finish("FAILED", reason)
