"""Over 20 steps on the same data, the fused-loss training step follows the eager (full-logits) one."""
from __future__ import annotations

import torch

from ablate.models.build import build_mllm
from ablate.train.loop import train
from ablate.train.optim import build_optimizer
from ablate.train.speed import Prefetcher, feature_preparer, reference_forward


def run(perf_setup, eager: bool, prefetch: bool = False) -> list[float]:
    bench, shape = perf_setup["bench"], perf_setup["shape"]
    cfg = bench.cell_config(perf_setup["specs"], shape, "avg-pool", 4, steps=20)
    # the LLM trains too (an hf: LLM is frozen by default, docs/backbones.md), so 20 steps visibly lower the loss
    settings = {"precision": "fp32", "lr": 3e-3, "lr_multipliers": {"encoder": 0.0, "connector": 1.0, "llm": 0.5}}
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=settings)})
    torch.manual_seed(0)
    model = build_mllm(cfg, perf_setup["root"] / "cache", None, device="cpu")
    optimizer, scheduler = build_optimizer(model, cfg.train)
    clock = bench.Clock(torch.device("cpu"))
    # text from 35 word ids, so that 20 steps visibly lower the loss
    batches = bench.synthetic_batches(perf_setup["paths"], 4, shape["text"], shape["batch"], vocab=40, seed=0)
    if prefetch:
        batches = Prefetcher(batches, feature_preparer(model, threads=2))
    if eager:
        with reference_forward(model):
            train(model, batches, cfg.train, optimizer, scheduler, clock)
    else:
        train(model, batches, cfg.train, optimizer, scheduler, clock)
    if prefetch:
        batches.close()
    return clock.losses


def test_fused_step_losses_match_eager_over_20_steps(perf_setup):
    eager = run(perf_setup, eager=True)
    fused = run(perf_setup, eager=False)
    assert len(eager) == len(fused) == 20
    assert eager[-1] < eager[0] - 1.0           # it trains: the comparison is not between two flat lines
    torch.testing.assert_close(torch.tensor(fused), torch.tensor(eager), rtol=1e-4, atol=1e-4)


def test_prefetched_features_give_the_same_losses(perf_setup):
    plain = run(perf_setup, eager=False)
    prefetched = run(perf_setup, eager=False, prefetch=True)
    torch.testing.assert_close(torch.tensor(prefetched), torch.tensor(plain), rtol=1e-4, atol=1e-4)
