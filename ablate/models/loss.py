"""Causal-LM loss without full-vocabulary logits: a fused linear + cross-entropy over the labelled positions only.

The LM head of a 150k-vocabulary model turns every position into a float32 row of 150k logits; at batch 32 x 272
positions that is 5 GB of logits plus as much again for their gradient, and it dominates a step's memory
(docs/performance.md). Here the head runs only on positions whose (shifted) label is not -100, in chunks of rows,
and each chunk's gradient is computed as soon as its logits exist, so at most one chunk of logits lives at a time.

- On CUDA with Liger-Kernel importable: `liger_fused_linear_cross_entropy` (Hsu et al., 2024, "Liger Kernel:
  Efficient Triton Kernels for LLM Training"; a kept library, Triton kernels).
- Otherwise (CPU, or no Liger): `ChunkedLinearCrossEntropy`, the same idea in plain PyTorch (also Wijmans et al.,
  2024, "Cut Your Losses in Large-Vocabulary Language Models"): per chunk, logits -> log-sum-exp -> loss, and
  d loss / d logits = softmax - one-hot, multiplied into the hidden-state and weight gradients at once.

Both give the mean token cross-entropy that Hugging Face's `ForCausalLMLoss` gives (float32 softmax), and the
same gradients (tests/perf/test_loss.py).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

IGNORE = -100
CHUNK_ROWS = 1024   # rows of logits per chunk: 1024 x 151,936 float32 = 0.6 GB transient on the reference LM


@functools.lru_cache(maxsize=1)
def liger_available() -> bool:
    """True when Liger-Kernel's fused linear cross-entropy imports (it needs Triton and a GPU to run)."""
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy  # noqa: F401
    except Exception:   # ImportError, or Triton failing at import on a machine without a driver
        return False
    return True


def labelled_rows(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states `(N, H)` at positions whose next-token label is not -100, and those labels `(N,)`.

    Position t predicts label t + 1 (the causal shift), so the last position never has a target.
    """
    targets = labels[:, 1:]
    keep = targets != IGNORE
    return hidden[:, :-1][keep], targets[keep]


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """`mean_i CE(hidden_i @ weight.T, target_i)`; gradients computed chunk by chunk in the forward pass."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int):
        n = hidden.shape[0]
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if need_h else None
        acc = torch.promote_types(weight.dtype, torch.float32)
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=torch.promote_types(hidden.dtype, torch.float32), device=hidden.device)
        for start in range(0, n, chunk_rows):
            h, y = hidden[start:start + chunk_rows], targets[start:start + chunk_rows]
            logits = h @ weight.t()
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, y[:, None]).squeeze(1)).sum()
            if need_h or need_w:
                grad = logits.sub_(lse[:, None]).exp_()                    # softmax, in place
                grad[torch.arange(len(y), device=y.device), y] -= 1.0      # - one-hot
                grad = grad.div_(n).to(hidden.dtype)
                if need_h:
                    grad_h[start:start + chunk_rows] = grad @ weight
                if need_w:
                    grad_w += (grad.t() @ h).to(acc)
            del logits
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return total / max(n, 1)   # no labelled row (a data-parallel rank's share can have none): 0, zero gradients

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None
        gw = (grad_w * grad_out).to(ctx.weight_dtype) if grad_w is not None else None
        return gh, gw, None, None


def _compute_dtype(device: torch.device, hidden: torch.Tensor) -> torch.dtype:
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return hidden.dtype


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk_rows: int = CHUNK_ROWS, backend: str = "auto") -> torch.Tensor:
    """Mean cross-entropy of `hidden (N, H) @ weight (V, H).T` against `targets (N,)`, never holding all logits.

    backend: "liger" (CUDA + Liger-Kernel), "chunked" (plain PyTorch), or "auto" (Liger when it can run).
    Under autocast the matmuls run in the autocast dtype and the softmax in float32, as Hugging Face's loss does.
    """
    if backend == "auto":
        backend = "liger" if hidden.is_cuda and liger_available() else "chunked"
    if backend == "liger":
        # optional: Liger-Kernel when installed
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

        n, width = hidden.shape
        # Liger sizes chunks so transient logits stay near N x H (32 rows at this vocabulary: slow, thin matmuls);
        # chunk_mem_const raises that budget to about `chunk_rows` rows per chunk.
        budget = max(1, math.ceil(weight.shape[0] * chunk_rows / (width * max(n, 1))))
        return liger_fused_linear_cross_entropy(hidden, weight, targets, ignore_index=IGNORE,
                                                chunk_mem_const=budget)
    if backend != "chunked":
        raise ValueError(f"backend {backend!r}: use 'auto', 'liger' or 'chunked'")
    dtype = _compute_dtype(hidden.device, hidden)
    with torch.autocast(hidden.device.type, enabled=False):
        return ChunkedLinearCrossEntropy.apply(hidden.to(dtype), weight.to(dtype), targets, chunk_rows)


def causal_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                   chunk_rows: int = CHUNK_ROWS, backend: str = "auto") -> torch.Tensor:
    """The next-token loss of an LM whose head is `weight` (no bias), from its last hidden states `(B, T, H)`."""
    rows, targets = labelled_rows(hidden, labels)
    return linear_cross_entropy(rows, weight, targets, chunk_rows=chunk_rows, backend=backend)


def reference_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The eager loss from full logits `(B, T, V)` (what Hugging Face computes): for tests and baselines."""
    return F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE)


def fused_loss_applies(llm) -> bool:
    """Whether `llm`'s logits are exactly `last_hidden @ lm_head.weight.T`, so the fused loss is its loss.

    False for heads with a bias, logit soft-capping (Gemma 2), logit scaling (Cohere, Granite) or no plain
    `nn.Linear` head; those models keep Hugging Face's own loss.
    """
    head = llm.get_output_embeddings() if hasattr(llm, "get_output_embeddings") else None
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        return False
    if getattr(llm, "base_model", llm) is llm:
        return False
    config = getattr(llm, "config", None)
    for name in ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale"):
        value = getattr(config, name, None)
        if value not in (None, 1, 1.0):
            return False
    return True
