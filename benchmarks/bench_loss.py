"""The LM-head loss alone on the CPU: full logits + cross-entropy (eager) against the chunked fused version.
1,024 labelled rows, width 512, vocabulary 32,000 (the logits alone are 131 MB in float32)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ablate.models.loss import linear_cross_entropy

N, H, V = 1024, 512, 32000


@pytest.fixture(scope="module")
def tensors():
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    return (torch.randn(N, H, generator=g) * 0.05, torch.randn(V, H, generator=g) * 0.05,
            torch.randint(0, V, (N,), generator=g))


def eager(h, w, y):
    F.cross_entropy((h @ w.t()).float(), y).backward()


def chunked(h, w, y):
    linear_cross_entropy(h, w, y, chunk_rows=256, backend="chunked").backward()


@pytest.mark.parametrize("fn", [eager, chunked], ids=["full-logits", "chunked-fused"])
def test_loss_forward_backward(benchmark, tensors, fn):
    h, w, y = (t.clone().requires_grad_(t.is_floating_point()) for t in tensors)
    benchmark.pedantic(fn, args=(h, w, y), rounds=5, iterations=1, warmup_rounds=1)
    assert h.grad is not None and w.grad.shape == (V, H)
