"""A tiny training step on the CPU: the eager baseline (full-vocabulary logits, Hugging Face's loss) against the
fused linear + cross-entropy, with features from the cache and from the encoder."""
from __future__ import annotations

import pytest
import torch

from ablate.models.build import build_mllm
from ablate.models.features import FeatureCache
from ablate.train.optim import build_optimizer
from ablate.train.speed import reference_forward


def make_step(tiny, eager: bool, cache: bool):
    bench, shape = tiny["bench"], tiny["shape"]
    cfg = bench.cell_config(tiny["specs"], shape, "avg-pool", shape["tokens"], steps=10**6, feature_cache=cache)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"precision": "fp32", "batch_size": 8})})
    model = build_mllm(cfg, tiny["root"], FeatureCache() if cache else None, device="cpu")
    optimizer, scheduler = build_optimizer(model, cfg.train)
    batch = next(bench.synthetic_batches(tiny["paths"], shape["tokens"], 64, 8, shape["llm"]["vocab_size"], 0))
    device = torch.device("cpu")

    def step():
        if eager:
            with reference_forward(model):
                return bench.train_step(model, batch, optimizer, scheduler, 1.0, device)
        return bench.train_step(model, batch, optimizer, scheduler, 1.0, device)

    step()  # fills the cache
    return step


@pytest.mark.parametrize("eager", [True, False], ids=["eager-full-logits", "fused-loss"])
@pytest.mark.parametrize("cache", [True, False], ids=["cached-features", "live-encoder"])
def test_train_step(benchmark, tiny, eager, cache):
    """Batch 8 x (1 + 16 visual + 63 text) tokens, vocabulary 4,096, LM 64 wide x 2 layers."""
    loss = benchmark.pedantic(make_step(tiny, eager, cache), rounds=15, iterations=1, warmup_rounds=2)
    assert 0 < loss < 20
