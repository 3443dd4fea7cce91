"""Measuring on a GPU or a CPU: syncs, peak memory, the matmul peak, timed steps, FLOPs, the fused loss's check."""
from __future__ import annotations

import contextlib
import statistics
import time

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def matmul_peak_tflops(device: torch.device, n: int) -> float:
    """Measured dense matmul throughput: bf16 on a GPU, float32 on a CPU (the MFU denominator)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps = 10 if device.type == "cuda" else 3
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12



def timed(device: torch.device, run_step, warm: int, steps: int) -> dict:
    """Run `warm` + `steps` steps; the median step time after the warm-up, and the warm-up's wall time."""
    reset_peak(device)
    start = time.perf_counter()
    losses = [run_step() for _ in range(warm)]
    sync(device)
    first = time.perf_counter() - start
    marks = [time.perf_counter()]
    for _ in range(steps):
        losses.append(run_step())
        marks.append(time.perf_counter())
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    return {"step_ms": 1000 * statistics.median(gaps), "mean_ms": 1000 * statistics.fmean(gaps),
            "first_steps_s": first, "peak_gib": peak_gib(device), "losses": losses}


@contextlib.contextmanager
def chunked_loss():
    """Inside: the fused loss uses the plain PyTorch chunked backend even where Liger-Kernel is available."""
    from ablate.models import loss as loss_module

    original = loss_module.linear_cross_entropy

    def chunked(*args, **kwargs):
        return original(*args, **{**kwargs, "backend": "chunked"})

    loss_module.linear_cross_entropy = chunked
    try:
        yield
    finally:
        loss_module.linear_cross_entropy = original


def liger_check(device: torch.device) -> str:
    """'ok' when Liger's fused loss runs here and agrees with the chunked loss (value and gradients), else why not."""
    from ablate.models.loss import liger_available, linear_cross_entropy

    if device.type != "cuda" or not liger_available():
        return "not used (no CUDA or not importable)"
    try:
        g = torch.Generator(device=device).manual_seed(0)
        h = torch.randn(300, 256, device=device, generator=g)
        w = torch.randn(5000, 256, device=device, generator=g) * 0.05
        y = torch.randint(0, 5000, (300,), device=device, generator=g)
        out = {}
        for backend in ("liger", "chunked"):
            hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = linear_cross_entropy(hh, ww, y, chunk_rows=128, backend=backend)
            loss.backward()
            out[backend] = (loss.float(), hh.grad.float(), ww.grad.float())
        for a, b in zip(out["liger"], out["chunked"]):
            torch.testing.assert_close(a, b, rtol=3e-2, atol=3e-3)
    except Exception as err:
        return f"disabled: {type(err).__name__}: {err}"[:200]
    return "ok"


def count_flops(model, batch, pixel_values, device: torch.device) -> float:
    """FLOPs of one training step's forward + backward (frozen encoder forward only), by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with chunked_loss(), counter, torch.autocast(device.type, dtype=torch.bfloat16):
        loss = model(batch.input_ids.to(device), batch.attention_mask.to(device), batch.labels.to(device),
                     batch.images, pixel_values=pixel_values).loss
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())

def load_images(paths: list[str]):
    from ablate.models.features import load_images as load

    return load(paths)


def dynamo_graphs() -> int:
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
    except Exception:
        return -1

