"""Part `dp`: data-parallel weak scaling, when more than one GPU is visible (or `--dp-procs N`): the same cell
with the speed path on, on 1 process and on N (one per GPU, `train.batch_size` N times the per-process batch),
each rank joining the group as under runners/multigpu.yaml (`parallel.init_from_env`). Figures: samples/s,
samples/s per GPU, weak-scaling efficiency (per-GPU samples/s on N over that on 1).

The 1-process baseline is measured here, in the same run and with the same settings as the N-process cell (never
a row of another part); an efficiency above 1 is printed with a warning (it means the baseline was slower per
sample than each of the N ranks: noise, or unlike settings), never alone.

Then DDP against FSDP2 (`train.parallel: ddp | fsdp`) on the same N processes with the LLM (the reference shape:
Qwen2-0.5B, random weights from its config) trained in full: peak memory of the largest process and of all
together, and samples/s."""
from __future__ import annotations

import torch

from .wholecell import build_small_world, whole_cell

FULL_LLM = {"lr_multipliers": {"llm": 1.0}}   # the LLM trained in full: what FSDP shards (weights, grads, AdamW)
STRATEGIES = ("ddp", "fsdp")


def estimate(bench) -> float:
    runs = 2 + len(STRATEGIES)
    cell_steps, step_s = bench.args.cell_steps, bench.step_s()
    return (runs + 1) * bench.process_start_s() + runs * cell_steps * step_s * 1.5


def processes(bench) -> int:
    if bench.args.dp_procs:
        return bench.args.dp_procs
    return torch.cuda.device_count() if bench.device.type == "cuda" else 1


def scaling(one: dict, many: dict, n: int) -> dict:
    """Per-GPU samples/s on `n` processes over that on 1, with a warning when above 1."""
    per = many["samples_s"] / n
    efficiency = per / one["samples_s"]
    fields = {"samples_s_per_gpu": per, "weak_scaling_efficiency": efficiency,
              "speedup": many["samples_s"] / one["samples_s"]}
    if efficiency > 1:
        fields["warning"] = (f"weak-scaling efficiency {efficiency:.2f} > 1: the 1-process baseline ran slower per "
                             "sample than each of the N ranks (noise or unlike settings): not a real figure, rerun")
    return fields


def run(bench) -> None:
    n = processes(bench)
    if n < 2:
        bench.row("dp", "skipped: one GPU visible (--dp-procs N to force)", gpus=n)
        return
    build_small_world(bench)
    one = whole_cell(bench, "dp-1", speed=True)
    bench.row("dp", "1 process, speed path on", **one, samples_s_per_gpu=one["samples_s"])
    many = whole_cell(bench, f"dp-{n}", speed=True, processes=n)
    bench.row("dp", f"{n} processes, batch {n} x {bench.shape['batch']}", **many, **scaling(one, many, n))
    for strategy in STRATEGIES:
        cell = whole_cell(bench, f"dp-{n}-{strategy}", speed=True, processes=n,
                          train_extra={**FULL_LLM, "parallel": strategy})
        bench.row("dp", f"{strategy}: {n} processes, LLM trained in full", **cell,
                  samples_s_per_gpu=cell["samples_s"] / n)
