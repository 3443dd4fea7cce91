"""Part `nocache`: the optimised grid without the frozen-encoder feature cache at `--nocache-steps` steps per
cell, against the cached grid's wall time up to that step of every cell."""
from __future__ import annotations

from .grid import grid


def estimate(bench) -> float:
    few = min(bench.args.nocache_steps, bench.args.grid_steps)
    return 6 * (bench.model_build_s() + few * bench.step_s() * 1.3) + 10


def run(bench) -> None:
    few = min(bench.args.nocache_steps, bench.args.grid_steps)
    if not hasattr(bench, "fast_grid"):
        bench.fast_grid = grid(bench, f"optimised, feature cache, {few} steps/cell", True, few)
    cells = bench.fast_grid["cells"]
    truncated = sum(c["times"][few - 1] for c in cells if len(c["times"]) >= few)
    bench.row("grid", f"optimised, feature cache, first {few} steps/cell", wall_s=truncated)
    nocache = grid(bench, f"optimised, no feature cache, {few} steps/cell", True, few, use_cache=False)
    bench.row("grid", "no cache / cache wall time (same steps)", ratio=nocache["wall_s"] / truncated)
