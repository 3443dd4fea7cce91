"""runners/multigpu.yaml: one cell on several GPUs, launched with `accelerate launch` or `torchrun`.

The command per cell is
  accelerate launch --num_processes N --multi_gpu --mixed_precision bf16 --main_process_port P \
      -m ablate.runners.child ...
  torchrun --standalone --nproc-per-node N -m ablate.runners.child ...
(both through `python -m`, so the venv's copies are used). The launcher sets RANK/WORLD_SIZE; only rank 0 takes
the claim and writes the store. ablate.train has no data-parallel step yet: until it has, the other ranks exit at
once and the cell trains on rank 0's GPU (docs/runners.md, "multigpu").
"""
from __future__ import annotations

import socket
import sys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher_argv(cfg, python: str | None = None) -> list[str]:
    """The argv before the child's module name (which follows `-m`)."""
    python = cfg.python or python or sys.executable
    port = str(cfg.main_process_port or free_port())
    if cfg.launcher == "torchrun":
        return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={cfg.gpus}",
                *cfg.extra_args, "-m"]
    multi = ["--multi_gpu"] if cfg.gpus > 1 else []
    return [python, "-m", "accelerate.commands.launch", "--num_processes", str(cfg.gpus), *multi,
            "--num_machines", "1", "--mixed_precision", cfg.mixed_precision, "--dynamo_backend", "no",
            "--main_process_port", port, *cfg.extra_args, "-m"]
