"""What one training step computes, counted on a real batch: FLOPs, tokens and samples; the steps a compute budget
buys; model FLOPs utilisation against the device's bf16 peak.

The count is torch's `FlopCounterMode` (matrix products, convolutions and attention; element-wise work is left out,
as in MFU figures everywhere) over one training step on the cell's first batch, before any speed-up wraps the model:
the encoder's forward (and backward when it trains) on the batch's images, counted apart so that a cell whose
frozen features come from the feature cache counts the same as one that computes them, then the connector's and
the LLM's forward and backward. A cell's training FLOPs are that step's count times its steps (batches differ only
in their padding).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ablate.config.schema import Budget
from ablate.models.features import load_images

# dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, by a name `torch.cuda.get_device_name` holds
BF16_PEAK = (("B200", 2250e12), ("GH200", 989.4e12), ("H200", 989.4e12), ("H100", 989.4e12), ("H800", 989.4e12),
             ("A100", 312e12), ("A800", 312e12), ("L40S", 362.05e12), ("L4", 121e12), ("A10G", 70e12))


@dataclass(frozen=True)
class StepCost:
    """One training step on one global batch: FLOPs (encoder apart), real (non-padding) tokens, samples."""

    encoder_flops: int
    flops: int            # everything: encoder + connector + LLM, forward and backward
    tokens: int
    samples: int

    def metrics(self, steps: int) -> dict[str, float]:
        """`cost/step_flops`, and the cell's training totals over `steps`: `cost/train_flops`, `cost/train_tokens`
        and `cost/train_samples`."""
        return {"cost/step_flops": float(self.flops), "cost/train_flops": float(self.flops) * steps,
                "cost/train_tokens": float(self.tokens) * steps, "cost/train_samples": float(self.samples) * steps}


def count_flops(fn) -> int:
    # lazy: flop_counter loads torch._decomp (~0.4 s), which building a grid never needs
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:   # not under no_grad: its module tracker needs grad_fns
        fn()
    return int(counter.get_total_flops())


def measure_step(model, batch) -> StepCost:
    """Count one training step of `model` (an `ablate.models.mllm.MLLM`) on `batch` without changing anything the
    training sees: the random state is put back and the gradients cleared."""
    device = model.device
    cpu_rng = torch.random.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    try:
        features = None
        encoder_flops = 0
        if batch.images:
            pixels = model.encoder.preprocess(load_images(batch.images)).to(device)
            trains = any(p.requires_grad for p in model.encoder.parameters())
            out = {}

            def encode():
                out["features"] = model.encoder(pixels)
                if trains:   # the backward's shapes are those of the real gradient's
                    out["features"].sum().backward()

            encoder_flops = count_flops(encode)
            features = out["features"].detach()

        def step():
            model(batch.input_ids.to(device), batch.attention_mask.to(device), batch.labels.to(device),
                  batch.images, features=features).loss.backward()

        rest = count_flops(step)
    finally:
        model.zero_grad(set_to_none=True)
        torch.random.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    return StepCost(encoder_flops=encoder_flops, flops=encoder_flops + rest,
                    tokens=int(batch.attention_mask.sum()), samples=int(batch.input_ids.shape[0]))


def steps_for(budget: Budget, batch_size: int, step: StepCost | None = None) -> int:
    """The steps that spend `budget` (rounded up): samples need only the batch size; tokens and FLOPs need a
    measured step."""
    if budget.samples is not None:
        return max(1, math.ceil(budget.samples / batch_size))
    if step is None:
        raise ValueError(f"a budget in {budget.quantity} needs a measured step")
    per_step = step.tokens if budget.tokens is not None else step.flops
    return max(1, math.ceil(budget.amount / max(per_step, 1)))


def bf16_peak(device: torch.device) -> float | None:
    """The device's dense bf16 peak in FLOP/s, where known (CUDA devices of `BF16_PEAK`); None on the CPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK if key in name), None)


def mfu(flops: float, seconds: float, device: torch.device) -> float | None:
    """Model FLOPs utilisation: counted FLOPs per second over the device's bf16 peak (None where unknown)."""
    peak = bf16_peak(device)
    return None if peak is None or seconds <= 0 else flops / seconds / peak
