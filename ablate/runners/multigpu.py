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
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile

EXIT_FILE_ENV = "ABLATE_EXIT_FILE"
WRAPPER_MODULE = "ablate.runners.multigpu"


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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
