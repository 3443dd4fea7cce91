"""Part `step`: the eager baseline (full-vocabulary logits, Hugging Face loss, float32 frozen encoder under
autocast) against the optimised step (fused linear + cross-entropy, frozen encoder in bf16, decoder blocks under
`torch.compile`), on the same card; samples/s, MFU of the measured bf16 matmul peak, peak memory, first/last loss."""
from __future__ import annotations

import torch

from .common import SyntheticBatch, train_step
from .measure import chunked_loss, count_flops, load_images, timed


def run(bench) -> None:
    from ablate.models.loss import liger_available
    from ablate.train.speed import reference_forward

    args, device = bench.args, bench.device
    cfg, model, optimizer, scheduler = bench.build(steps=10**6)
    batch = next(bench.batches())
    pixels = model.encoder.preprocess(load_images(batch.images)).to(device)
    on_gpu = SyntheticBatch(batch.input_ids.to(device), batch.attention_mask.to(device),
                            batch.labels.to(device), batch.images, batch.n_images)
    clip = cfg.train.grad_clip

    def step(px=None, feats=None):
        return lambda: train_step(model, on_gpu, optimizer, scheduler, clip, device, px, feats)

    bench.flops = count_flops(model, on_gpu, pixels, device)           # the fused path: labelled rows only
    with reference_forward(model):
        eager_flops = count_flops(model, on_gpu, pixels, device)
        base = timed(device, step(pixels), args.warm, args.steps)
    b = bench.shape["batch"]
    bench.results["meta"]["model_tflop_per_step"] = float(f"{bench.flops / 1e12:.4g}")
    bench.results["meta"]["eager_executed_tflop_per_step"] = float(f"{eager_flops / 1e12:.4g}")
    bench.baseline = base
    bench.row("step", "eager baseline (full logits, HF loss)", **step_fields(bench, base, b))

    fused = timed(device, step(pixels), args.warm, args.steps)
    bench.row("step", "+ fused loss", **step_fields(bench, fused, b))
    info = bench.optimise(model)
    opt = timed(device, step(pixels), args.warm, args.steps)
    bench.row("step", "+ bf16 frozen encoder + compiled blocks", **step_fields(bench, opt, b), **info)
    if liger_available() and device.type == "cuda" and bench.results["meta"].get("liger_check") == "ok":
        with chunked_loss():
            alt = timed(device, step(pixels), args.warm, args.steps)
        bench.row("step", "  same, chunked PyTorch CE instead of Liger", **step_fields(bench, alt, b))
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        feats = model.encoder(pixels)
    cached = timed(device, step(feats=feats), args.warm, args.steps)
    bench.row("step", "  same, features given (feature cache)", **step_fields(bench, cached, b, encoder=False))
    bench.model, bench.optimizer, bench.scheduler, bench.cfg = model, optimizer, scheduler, cfg
    bench.on_gpu, bench.pixels, bench.feats = on_gpu, pixels, feats
    bench.optimised = opt


def step_fields(bench, m: dict, batch: int, encoder: bool = True) -> dict:
    flops = bench.flops if encoder else bench.flops - encoder_flops(bench.shape)
    out = {"step_ms": m["step_ms"], "samples_s": batch / (m["step_ms"] / 1000),
           "mfu": flops / (m["step_ms"] / 1000) / (bench.peak * 1e12), "peak_gib": m["peak_gib"],
           "first_steps_s": m["first_steps_s"], "loss_first": m["losses"][0], "loss_last": m["losses"][-1]}
    if hasattr(bench, "baseline"):
        out["speedup"] = bench.baseline["step_ms"] / m["step_ms"]
    return out


def encoder_flops(shape: dict) -> float:
    e, n = shape["encoder"], (shape["resolution"] // shape["encoder"]["patch_size"]) ** 2
    per_layer = 2 * n * (4 * e["hidden_size"] ** 2 + 2 * e["hidden_size"] * e["intermediate_size"])
    per_layer += 4 * n * n * e["hidden_size"]
    return float(shape["batch"] * e["num_hidden_layers"] * per_layer)
