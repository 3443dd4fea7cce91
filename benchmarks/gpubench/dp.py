"""Part `dp`: data-parallel weak scaling, when more than one GPU is visible (or `--dp-procs N`): the same cell
with the speed path on, on 1 process and on N (one per GPU, `train.batch_size` N times the per-process batch),
each rank joining the group as under runners/multigpu.yaml (`parallel.init_from_env`). Figures: samples/s,
samples/s per GPU, weak-scaling efficiency (per-GPU samples/s on N over that on 1)."""
from __future__ import annotations

import torch

from .wholecell import build_small_world, whole_cell


def estimate(bench) -> float:
    runs = 1 + (not hasattr(bench, "cell_on"))
    cell_steps, step_s = bench.args.cell_steps, bench.step_s()
    return (runs + 1) * bench.process_start_s() + runs * cell_steps * step_s * 1.2 + cell_steps * step_s * 1.5


def processes(bench) -> int:
    if bench.args.dp_procs:
        return bench.args.dp_procs
    return torch.cuda.device_count() if bench.device.type == "cuda" else 1


def run(bench) -> None:
    n = processes(bench)
    if n < 2:
        bench.row("dp", "skipped: one GPU visible (--dp-procs N to force)", gpus=n)
        return
    build_small_world(bench)
    one = getattr(bench, "cell_on", None) or whole_cell(bench, "dp-1", speed=True)
    bench.row("dp", "1 process, speed path on", **one, samples_s_per_gpu=one["samples_s"])
    many = whole_cell(bench, f"dp-{n}", speed=True, processes=n)
    per = many["samples_s"] / n
    bench.row("dp", f"{n} processes, batch {n} x {bench.shape['batch']}", **many, samples_s_per_gpu=per,
              weak_scaling_efficiency=per / one["samples_s"], speedup=many["samples_s"] / one["samples_s"])
