"""runners/multigpu.yaml: one cell trained data-parallel by several processes (GPUs), under `torchrun` or
`accelerate launch`.

The command per cell is
  python -m ablate.runners.multigpu  python -m torch.distributed.run --standalone --nproc-per-node N \
      -m ablate.runners.child GRID CELL ...
  python -m ablate.runners.multigpu  python -m accelerate.commands.launch --num_processes N --multi_gpu ... \
      -m ablate.runners.child GRID CELL ...
(through `python -m`, so the venv's copies are used). The launcher sets RANK / WORLD_SIZE / MASTER_ADDR /
MASTER_PORT; every rank joins the process group and trains its share of each batch (ablate.train.parallel);
rank 0 alone claims the cell, writes the store and checkpoints and evaluates (docs/runners.md, "multigpu").

This module's `main` wraps the launcher: a launcher exits 1 whenever a rank fails, which would lose the child's
exit code (3 failed, 4 held elsewhere, 5 finished elsewhere, 6 store). Rank 0 writes its code to the file named
by `$ABLATE_EXIT_FILE`; the wrapper exits with it (or with the launcher's own code when rank 0 wrote none: it
crashed), and takes the launcher down with it if `ablate run` dies.

torchrun runs inside the wrapper (`torch.distributed.run`, its elastic agent), so a failure comes back as the
agent's `ChildFailedError`: per rank, the exit code, the signal, and the error file a rank writes when it fails
(`torch.distributed.elastic`'s error handler, as `@record` does). When a rank other than 0 is the cause (killed by
a signal, failed, or still running after rank 0 gave up on it), the wrapper's last line names it, `error: rank 1
was killed by SIGKILL (exit code -9)`, and it exits 1: the runner records that line as the cell's reason.
A rank still running `HUNG_GRACE_S` after rank 0 has written its exit is killed (SIGKILL, with everything the
launcher started): a hung rank holds the grid for the collective timeout plus that grace, not plus the agent's
30 s close.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

EXIT_FILE_ENV = "ABLATE_EXIT_FILE"
WRAPPER_MODULE = "ablate.runners.multigpu"
TORCHRUN = ["-m", "torch.distributed.run"]
COLLECTIVE = "collective"   # written after rank 0's exit code when its cell failed on a broken collective
HUNG_GRACE_S = 5.0   # after rank 0 has written its exit, the other ranks have this long to end


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher_argv(cfg, python: str | None = None) -> list[str]:
    """The argv before the child's module name (which follows `-m`): this module's wrapper, then the launcher."""
    python = cfg.python or python or sys.executable
    return [python, "-m", WRAPPER_MODULE, *launcher_only(cfg, python)]


def launcher_only(cfg, python: str) -> list[str]:
    """The launcher's own argv up to its `-m`."""
    port = str(cfg.main_process_port or free_port())
    if cfg.launcher == "torchrun":
        return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={cfg.gpus}",
                *cfg.extra_args, "-m"]
    multi = ["--multi_gpu"] if cfg.gpus > 1 else []
    return [python, "-m", "accelerate.commands.launch", "--num_processes", str(cfg.gpus), *multi,
            "--num_machines", "1", "--mixed_precision", cfg.mixed_precision, "--dynamo_backend", "no",
            "--main_process_port", port, *cfg.extra_args, "-m"]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    """Run the launcher `argv`; exit with rank 0's code (see the module's docstring)."""
    _die_with_parent()
    fd, path = tempfile.mkstemp(prefix="ablate-rank0-", suffix=".rc")
    os.close(fd)
    os.unlink(path)
    signalled = []
    if argv[1:3] == TORCHRUN:
        try:
            return run_torchrun(argv[3:], Path(path))
        finally:
            if os.path.exists(path):
                os.unlink(path)
    try:
        proc = subprocess.Popen(argv, env={**os.environ, EXIT_FILE_ENV: path}, preexec_fn=_die_with_parent)

        def forward(signum, frame):   # passed on to the launcher, which passes it to the ranks
            signalled.append(signum)
            proc.send_signal(signum)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, forward)
        rc = proc.wait()
        try:
            with open(path) as f:
                code = int(f.read().strip())
        except (OSError, ValueError):
            code = None
        if code in (130, 143) and not signalled and rc != 0:
            code = None   # the launcher stopped rank 0 because another rank failed
        if code is None:
            print(f"error: a rank of the cell failed, hung or was killed (the launcher exited with {rc}; its report "
                  "and the rank's traceback are above)", file=sys.stderr, flush=True)
            return rc if rc > 0 else 1
        return code
    finally:
        if os.path.exists(path):
            os.unlink(path)


def _exit_code(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _collective_broke(path: Path) -> bool:
    """Whether rank 0 wrote that its cell failed on a broken collective (`parallel.RankFailed`)."""
    try:
        return COLLECTIVE in path.read_text().split()[1:]
    except OSError:
        return False


class HungRanks(threading.Thread):
    """Once rank 0 has written its exit (`path`), the processes still running `grace_s` later (the ranks, which
    run in sessions of their own, and anything they started) are killed with SIGKILL, instead of waiting for the
    agent's close (SIGTERM, then up to 30 s): a rank stuck where SIGTERM does not reach it ends within the grace."""

    def __init__(self, path: Path, grace_s: float = HUNG_GRACE_S):
        super().__init__(daemon=True)
        self.path, self.grace_s = path, grace_s
        self.done = threading.Event()
        self.killed: list[int] = []

    def run(self) -> None:
        import psutil

        while _exit_code(self.path) is None:
            if self.done.wait(0.5):
                return
        if self.done.wait(self.grace_s):
            return
        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
                self.killed.append(child.pid)
            except psutil.NoSuchProcess:
                pass


def name_failures(failures: dict, code: int | None, collective: bool, ranks: list[int],
                  killed: list[int] = ()) -> str | None:
    """What ended the cell when a rank other than 0 did, from the agent's `ProcessFailure`s (rank -> exit code,
    signal, error file); None when rank 0's own outcome is the cell's. `collective`: rank 0 failed on a broken
    collective; `ranks`: the global ranks this agent ran; `killed`: the pids `HungRanks` killed (not causes)."""
    caused = {r: f for r, f in failures.items() if f.pid not in killed}
    others = {r: f for r, f in caused.items() if r != 0}
    if others:   # the first of the others to fail (a death by a signal before an exit in the same second)
        rank, failure = min(others.items(), key=lambda item: (item[1].timestamp, item[1].exitcode >= 0, item[0]))
        if 0 not in caused or collective or failure.timestamp < caused[0].timestamp:
            return f"rank {rank} {_how(failure)}"
    hung = [r for r in ranks if r != 0 and r not in caused]
    if collective and code == 3 and hung:
        how = ("killed by the wrapper (SIGKILL)" if any(r in failures for r in hung)
               else "stopped by the launcher")
        return (f"rank {hung[0]} hung: still running when rank 0's collective timed out waiting for it "
                f"(ABLATE_COLLECTIVE_TIMEOUT_S); {how} after rank 0 ended")
    return None


def _how(failure) -> str:
    if failure.exitcode < 0:
        return f"was killed by {failure.signal_name()} (exit code {failure.exitcode})"
    message = failure.message   # the error file's: {"message": "ValueError: ...", "extraInfo": {...}} or text
    message = str(message.get("message", "") if isinstance(message, dict) else message or "")
    if failure.error_file_data and message:
        return f"failed: {message.strip().splitlines()[0][:300]} (exit code {failure.exitcode})"
    return f"exited with code {failure.exitcode}"


def run_torchrun(args: list[str], path: Path) -> int:
    """torchrun's agent in this process (the ranks are its children); the exit code as `main` says."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    os.environ[EXIT_FILE_ENV] = str(path)
    parsed = parse_args(args)
    watcher = HungRanks(path)
    watcher.start()
    failures: dict = {}
    try:
        run(parsed)
    except ChildFailedError as err:
        failures = err.failures
    except SignalException as err:   # Ctrl-C or SIGTERM to the wrapper: the agent stopped the ranks
        code = _exit_code(path)
        return code if code is not None else 128 + int(err.sigval)
    finally:
        watcher.done.set()
    code = _exit_code(path)
    ranks = list(range(int(parsed.nproc_per_node))) if str(parsed.nnodes) in ("1", "1:1") else [0]
    named = name_failures(failures, code, _collective_broke(path), ranks, watcher.killed)
    if named:
        print(f"error: {named}", file=sys.stderr, flush=True)
        return 1
    if code is None and failures:
        print("error: a rank of the cell failed, hung or was killed (the launcher's report and the rank's "
              "traceback are above)", file=sys.stderr, flush=True)
        return 1
    return 0 if code is None else code   # None and no failure: a node whose ranks did not include rank 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
