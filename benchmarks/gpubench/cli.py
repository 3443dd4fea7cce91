"""The command line of benchmarks/gpu.py: its options, the parts in their order, the results written."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from . import cell, dp, generation, grid, loader, nocache, step
from .bench import Bench
from .report import markdown, summary

# The order they run in. The grid goes first so that its optimised cells pay a cold compilation (the step part
# then reuses the compiled blocks); the later, cheaper parts run only if their estimated time fits --limit-s.
PARTS = {"grid": grid, "step": step, "cell": cell, "dp": dp, "loader": loader, "eval": generation,
         "nocache": nocache}
LATE = {name for name, part in PARTS.items() if hasattr(part, "estimate")}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=sys.modules[__package__].__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU test of the script)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is there")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for gpu_results.json / .md")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
    parser.add_argument("--steps", type=int, default=12, help="timed steps per step measurement")
    parser.add_argument("--warm", type=int, default=3, help="warm-up steps (compilation happens here)")
    parser.add_argument("--grid-steps", type=int, default=150,
                        help="steps per cell of the grid part (150 since the cell and dp parts joined the run)")
    parser.add_argument("--nocache-steps", type=int, default=60, help="steps per cell of the no-cache grid")
    parser.add_argument("--limit-s", type=float, default=560,
                        help="skip a late part (cell, dp, loader, eval, nocache) whose estimated end is past this "
                             "many seconds")
    parser.add_argument("--cell-steps", type=int, default=100, help="training steps of the whole-cell runs")
    parser.add_argument("--dp-procs", type=int, default=0,
                        help="processes of the data-parallel run (default: the visible GPUs; 2+ forces it, "
                             "also on the CPU with gloo)")
    parser.add_argument("--synthetic-data", action="store_true",
                        help="whole cells train on synthetic batches over the world's images (the default when "
                             "`datasets` is not installed) instead of the world's data pipeline")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads when running on the CPU")
    args = parser.parse_args(argv)
    if args.tiny and "--grid-steps" not in " ".join(argv or sys.argv):
        args.grid_steps, args.nocache_steps, args.steps = 6, 3, 4
    if args.tiny and "--cell-steps" not in " ".join(argv or sys.argv):
        args.cell_steps = 4
    bench = Bench(args)
    print(json.dumps(bench.results["meta"]), flush=True)
    bench.setup()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if "loader" in parts and "step" not in parts:
        parts.append("step")
    for part in PARTS:
        if part not in parts:
            continue
        if part in LATE and bench.elapsed() + PARTS[part].estimate(bench) > args.limit_s:
            bench.row(part, "skipped: would not end within --limit-s", limit_s=args.limit_s,
                      elapsed_s=bench.elapsed(), estimate_s=PARTS[part].estimate(bench))
            continue
        try:
            PARTS[part].run(bench)
        except Exception as err:  # one failing part must not lose the others' figures
            import traceback

            traceback.print_exc()
            bench.row(part, "FAILED", error=f"{type(err).__name__}: {err}"[:300])
    bench.row("total", "script wall time", seconds=bench.elapsed())
    bench.stack.close()
    shutil.rmtree(bench.root, ignore_errors=True)   # backbones, images, whole cells' workspace: gigabytes at full size
    print(markdown(bench.results))
    print(summary(bench.results))
    return bench.results

