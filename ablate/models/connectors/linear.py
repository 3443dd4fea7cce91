"""`linear`: one linear layer per patch (LLaVA 1.0, Liu et al., 2023, "Visual Instruction Tuning").

Shape: (B, h*w, d_in) -> (B, tokens, d_out). LLaVA keeps every patch, so tokens == h*w is always possible.
Decision for fewer tokens: with `pool` (default true), the patch grid is first average-pooled to an s x s grid
(adaptive, as MM1's avg-pool) and tokens must then be a square s*s with s <= min(h, w); pooling before the
projection keeps the FLOPs proportional to the token count.
"""
from __future__ import annotations

from torch import nn

from .mlp import MLP


class Linear(MLP):
    """The `mlp` connector with a single linear projection (same pooling rule, same token counts)."""

    OPTIONS = {"pool": True}

    def make_proj(self, d_in, d_out, options):
        return nn.Linear(d_in, d_out)
