"""`mlp`: a two-layer GELU MLP per patch (LLaVA-1.5, Liu et al., 2023, "Improved Baselines with Visual
Instruction Tuning").

Shape: (B, h*w, d_in) -> (B, tokens, d_out). tokens == h*w is always possible. Decision for fewer tokens: with
`pool` (default true) the patch grid is first average-pooled to s x s, so tokens must be a square s*s with
s <= min(h, w); `mlp` with pooling is then the same network as `avg-pool`.
Options: depth (linear layers, default 2), hidden (width between them, 0 = d_out), pool.
"""
from __future__ import annotations

from torch import Tensor

from .base import Connector, side, square_counts
from .layers import mlp, pool_seq


class MLP(Connector):
    OPTIONS = {"depth": 2, "hidden": 0, "pool": True}
    HOW = "h*w (every patch), or with pool=true a square s*s with s <= min(h, w)"

    def __init__(self, d_in, d_out, grid, tokens, options):
        super().__init__(d_in, d_out, grid, tokens, options)
        self.out_grid = self.grid if tokens == grid[0] * grid[1] else (side(tokens),) * 2
        self.proj = self.make_proj(d_in, d_out, options)

    def make_proj(self, d_in, d_out, options):
        return mlp(d_in, d_out, options["depth"], options["hidden"])

    @classmethod
    def possible_tokens(cls, grid, options):
        every = grid[0] * grid[1]
        return sorted({every, *square_counts(grid)}) if options["pool"] else [every]

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(pool_seq(x, self.grid, self.out_grid))
