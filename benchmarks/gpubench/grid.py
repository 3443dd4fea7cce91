"""Part `grid`: a 6-cell connector grid (avg-pool / attn-pool / c-abstractor x two token counts) of
`--grid-steps` steps per cell through the project's training loop, eager baseline against optimised; model
building, feature-cache filling and a cold compilation included (this part runs first, so nothing is compiled
before it)."""
from __future__ import annotations

import gc
import statistics
import time

import torch

from .common import CONNECTORS, Clock
from .measure import dynamo_graphs, sync


def grid(bench, name: str, optimised: bool, steps: int, use_cache: bool = True) -> dict:
    """One pass over the grid's cells; each cell's wall time, time to its first step and step times."""
    from ablate.models.features import FeatureCache
    from ablate.train.loop import train
    from ablate.train.speed import prefetch_batches, reference_forward

    cache = FeatureCache(max_bytes=24 * 2**30) if use_cache else None
    start = time.perf_counter()
    cells, graphs = [], []
    for k, (tokens, connector) in enumerate([(t, c) for t in bench.shape["grid_tokens"] for c in CONNECTORS]):
        cell_start = time.perf_counter()
        cfg, model, optimizer, scheduler = bench.build(connector, tokens, steps, cache, use_cache)
        clock = Clock(bench.device)
        batches = bench.batches(tokens, seed=k)
        if optimised:
            bench.optimise(model)
            stream = prefetch_batches(batches, model)
            try:
                train(model, stream, cfg.train, optimizer, scheduler, clock)
            finally:
                stream.close()
        else:
            with reference_forward(model):
                train(model, batches, cfg.train, optimizer, scheduler, clock)
        sync(bench.device)
        cells.append({"connector": connector, "tokens": tokens, "wall_s": time.perf_counter() - cell_start,
                      "build_s": clock.times[0] - cell_start if clock.times else None,
                      "times": [t - cell_start for t in clock.times], "final_loss": clock.losses[-1]})
        graphs.append(dynamo_graphs())
        del model, optimizer, scheduler, batches
        stream = None
        gc.collect()
        if bench.device.type == "cuda":
            torch.cuda.empty_cache()
    wall = time.perf_counter() - start
    builds = [c["build_s"] - (c["times"][1] - c["times"][0]) for c in cells if len(c["times"]) > 1]
    if builds and not optimised:
        bench.build_s = statistics.fmean(builds)     # building a cell's model (no compilation)
    bench.row("grid", name, wall_s=wall, steps_per_cell=steps, cells=len(cells),
              cell_wall_s=[round(c["wall_s"], 1) for c in cells],
              to_first_step_s=[round(c["build_s"], 1) for c in cells if c["build_s"] is not None],
              dynamo_graphs=graphs,
              cache_hits=cache.hits if cache else None, cache_misses=cache.misses if cache else None)
    return {"wall_s": wall, "cells": cells}


def run(bench) -> None:
    """Eager baseline grid and optimised grid, both with the feature cache, `--grid-steps` steps per cell."""
    bench.eager_grid = grid(bench, "eager baseline, feature cache", False, bench.args.grid_steps)
    bench.fast_grid = grid(bench, "optimised, feature cache", True, bench.args.grid_steps)
    bench.row("grid", "optimised / eager wall time", ratio=bench.fast_grid["wall_s"] / bench.eager_grid["wall_s"])
