"""Part `eval`: batched generation (`MLLM.generate`), questions per second, float32 against bf16 autocast."""
from __future__ import annotations

import contextlib
import time

import torch

from .measure import sync


def estimate(bench) -> float:
    return 2 * bench.model_build_s() + 20


def run(bench) -> None:
    from PIL import Image

    device = bench.device
    cfg, model, _, _ = bench.build(steps=1)
    model.eval()
    n = bench.shape["questions"]
    images = [Image.open(p).convert("RGB") for p in bench.paths[:n]]
    contexts = [[img, "w1 w2 w3"] for img in images]
    for label, batch, autocast in (("float32, batch 32", 32, False), ("bf16 autocast, batch 32", 32, True),
                                   ("bf16 autocast, batch 128", 128, True)):
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with ctx:
            model.generate(contexts[:min(batch, n)], max_new_tokens=4)     # warm-up
            sync(device)
            start = time.perf_counter()
            for i in range(0, n, batch):
                model.generate(contexts[i:i + batch], max_new_tokens=4)
            sync(device)
        seconds = time.perf_counter() - start
        bench.row("eval", f"generate, {label}", questions_s=n / seconds, questions=n)
    del model
