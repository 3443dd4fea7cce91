"""Part `loader`: the optimised step with data already on the GPU against real loading (images decoded from disk
on a prefetch thread, with and without the feature cache), and the plain synchronous path. Needs part `step`."""
from __future__ import annotations

import torch

from .common import train_step
from .measure import timed


def estimate(bench) -> float:
    return 4 * (bench.args.warm + bench.args.steps) * bench.step_s() * 1.5 + 15


def run(bench) -> None:
    from ablate.models.features import FeatureCache, ImageFeatures
    from ablate.train.speed import prefetch_batches

    args, device, model = bench.args, bench.device, bench.model
    b, clip = bench.shape["batch"], bench.cfg.train.grad_clip
    opt, sch = bench.optimizer, bench.scheduler
    live = ImageFeatures(model.encoder, None, frozen=True)
    cache = FeatureCache()
    cached = ImageFeatures(model.encoder, cache, frozen=True)

    def run_stream(source, features_obj, name, **extra):
        model.features = features_obj
        stream = prefetch_batches(source, model) if extra.pop("prefetch", True) else source
        try:
            m = timed(device, lambda: train_step(model, next(stream), opt, sch, clip, device),
                      args.warm, args.steps)
        finally:
            if hasattr(stream, "close"):
                stream.close()
        bench.row("loader", name, step_ms=m["step_ms"], samples_s=b / (m["step_ms"] / 1000),
                  vs_data_on_gpu=m["step_ms"] / extra.get("ref_ms", bench.optimised["step_ms"]))

    run_stream(bench.batches(seed=1), live, "disk images, prefetch thread, no cache")
    with torch.no_grad():   # warm the cache on the images the next run will read
        for batch, _ in zip(bench.batches(seed=2), range(args.warm + args.steps)):
            cached(batch.images, device)
    gpu_feats = timed(device, lambda: train_step(model, bench.on_gpu, opt, sch, clip, device,
                                                 features=bench.feats), args.warm, args.steps)
    bench.row("loader", "features already on the GPU", step_ms=gpu_feats["step_ms"],
              samples_s=b / (gpu_feats["step_ms"] / 1000))
    run_stream(bench.batches(seed=2), cached, "disk batches, prefetch thread, warm cache",
               ref_ms=gpu_feats["step_ms"])
    run_stream(bench.batches(seed=3), live, "no prefetch: images read in the step", prefetch=False)
    model.features = cached
