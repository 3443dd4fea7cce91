"""`avg-pool`: adaptive average pooling of the patch grid to sqrt(n) x sqrt(n), then an MLP (MM1, McKinney et al.
2024, "MM1: Methods, Analysis & Insights from Multimodal LLM Pre-training", section 3.2).

Shape: (B, h*w, d_in) -> (B, n, d_out) with n = s*s, s <= min(h, w) (no upsampling).
Options: depth (linear layers of the projection, default 2), hidden (0 = d_out).
"""
from __future__ import annotations

from torch import Tensor

from .base import Connector, side, square_counts
from .layers import mlp, pool_seq


class AvgPool(Connector):
    OPTIONS = {"depth": 2, "hidden": 0}
    HOW = "a square s*s with s <= min(h, w)"

    def __init__(self, d_in, d_out, grid, tokens, options):
        super().__init__(d_in, d_out, grid, tokens, options)
        self.out_grid = (side(tokens),) * 2
        self.proj = mlp(d_in, d_out, options["depth"], options["hidden"])

    @classmethod
    def possible_tokens(cls, grid, options):
        return square_counts(grid)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(pool_seq(x, self.grid, self.out_grid))
