"""`attn-pool`: n learnable queries cross-attend once over the patch features, then an MLP projects them (MM1's
attention pooling, McKinney et al. 2024, section 3.2).

Shape: (B, h*w, d_in) -> (B, n, d_out) for any n >= 1. The attention runs at the encoder width d_in (the patch
features carry their own positions from the encoder). Options: heads (0 = auto), depth (projection layers, 2),
hidden (projection width, 0 = d_out).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Connector
from .layers import Attention, default_heads, mlp


class AttnPool(Connector):
    OPTIONS = {"heads": 0, "depth": 2, "hidden": 0}
    HOW = "any n >= 1 (one learnable query per token)"

    def __init__(self, d_in, d_out, grid, tokens, options):
        super().__init__(d_in, d_out, grid, tokens, options)
        self.queries = nn.Parameter(torch.randn(tokens, d_in) * 0.02)
        self.norm_q, self.norm_kv = nn.LayerNorm(d_in), nn.LayerNorm(d_in)
        self.attn = Attention(d_in, options["heads"] or default_heads(d_in))
        self.proj = mlp(d_in, d_out, options["depth"], options["hidden"])

    def forward(self, x: Tensor) -> Tensor:
        kv = self.norm_kv(x)
        q = self.norm_q(self.queries).expand(x.shape[0], -1, -1)
        return self.proj(self.queries + self.attn(q, kv, kv))
