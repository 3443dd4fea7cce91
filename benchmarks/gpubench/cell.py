"""Part `cell`: one whole cell as `ablate run` trains it (`ablate.cell.run_cell`: the embedded world, the model
built, `--cell-steps` steps, the cost metrics, the final checkpoint), with the speed path off (every `train:`
switch false) and on (`auto`: on with CUDA), each in a fresh process (cold compilation included); evaluation is
left out. Without `datasets` or with `--synthetic-data`, the world's data pipeline is replaced by synthetic batches
over the world's images (column `data`). Figures: whole-cell wall time, training samples/s at the median step,
peak memory, the effective switches, on / off."""
from __future__ import annotations

from .wholecell import build_small_world, speed_switches, whole_cell


def estimate(bench) -> float:
    return 2 * bench.process_start_s() + bench.args.cell_steps * (bench.step_s() + bench.eager_step_s()) * 1.2


def run(bench) -> None:
    if not speed_switches():
        bench.row("cell", "skipped: this version has no speed switches in train: (the grid part compares "
                  "eager and optimised)")
        return
    build_small_world(bench)
    off = whole_cell(bench, "cell-speed-off", speed=False)
    bench.row("cell", "whole cell, speed path off", **off)
    bench.cell_on = on = whole_cell(bench, "cell-speed-on", speed=True)
    bench.row("cell", "whole cell, speed path on (auto)", **on, speedup=off["step_ms"] / on["step_ms"])
    bench.row("cell", "on / off", wall_ratio=on["wall_s"] / off["wall_s"],
              samples_s_ratio=on["samples_s"] / off["samples_s"],
              peak_ratio=(on["peak_gib"] / off["peak_gib"]) if on["peak_gib"] and off["peak_gib"] else None)
