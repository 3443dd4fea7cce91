"""`linear`: one linear layer per patch (LLaVA 1.0, Liu et al., 2023, "Visual Instruction Tuning").

Shape: (B, h*w, d_in) -> (B, tokens, d_out). LLaVA keeps every patch, so tokens == h*w is always possible.
Decision for fewer tokens: with `pool` (default true), the patch grid is first average-pooled to an s x s grid
(adaptive, as MM1's avg-pool) and tokens must then be a square s*s with s <= min(h, w); pooling before the
projection keeps the FLOPs proportional to the token count.
"""
from __future__ import annotations

from torch import Tensor, nn

from .base import Connector, side, square_counts
from .layers import pool_seq


class Linear(Connector):
    OPTIONS = {"pool": True}
    HOW = "h*w (every patch), or with pool=true a square s*s with s <= min(h, w)"

    def __init__(self, d_in, d_out, grid, tokens, options):
        super().__init__(d_in, d_out, grid, tokens, options)
        self.out_grid = self.grid if tokens == grid[0] * grid[1] else (side(tokens),) * 2
        self.proj = nn.Linear(d_in, d_out)

    @classmethod
    def possible_tokens(cls, grid, options):
        every = grid[0] * grid[1]
        return sorted({every, *square_counts(grid)}) if options["pool"] else [every]

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(pool_seq(x, self.grid, self.out_grid))
