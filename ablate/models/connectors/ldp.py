"""`ldp`: MobileVLM's lightweight downsample projector (Chu et al. 2023, "MobileVLM: A Fast, Strong and Open
Vision Language Assistant for Mobile Devices").

A pointwise two-layer GELU MLP maps every patch to d_out, a stride-1 depthwise-conv block mixes neighbours, and
k stride-2 depthwise-conv blocks (MobileNetV3 inverted residuals, Hardswish) halve the grid k times. k is the most
halvings (at most `max_downsample`, default 2) that keep the grid at least as large as the target; an adaptive
average pool then reaches the exact grid when halving alone does not.
Shape: (B, h*w, d_in) -> (B, n, d_out). Possible n: ceil(h/2^k)*ceil(w/2^k) for k = 0..max_downsample (exact, no
pooling), and any square s*s with s <= min(h, w) (halving, then pooling). FLOPs do not grow with n: fewer tokens
mean more stride-2 blocks.
"""
from __future__ import annotations

from torch import Tensor, nn

from .base import Connector, side, square_counts
from .layers import ConvBlock, halvings, mlp, pool_seq, to_map, to_seq


def exact_grids(grid: tuple[int, int], max_down: int) -> list[tuple[int, int]]:
    """The grid after k halvings, for k = 0..max_down."""
    return [(halvings(grid[0], k), halvings(grid[1], k)) for k in range(max_down + 1)]


class LDP(Connector):
    OPTIONS = {"max_downsample": 2}
    HOW = "ceil(h/2^k)*ceil(w/2^k) for k <= max_downsample, or a square s*s with s <= min(h, w)"

    def __init__(self, d_in, d_out, grid, tokens, options):
        super().__init__(d_in, d_out, grid, tokens, options)
        grids = exact_grids(self.grid, options["max_downsample"])
        exact = [k for k, (a, b) in enumerate(grids) if a * b == tokens]
        if exact:
            k, self.out_grid = exact[-1], grids[exact[-1]]
        else:
            s = side(tokens)
            k = max(k for k, (a, b) in enumerate(grids) if a >= s and b >= s)
            self.out_grid = (s, s)
        self.conv_grid = grids[k]
        self.mlp = mlp(d_in, d_out, 2)
        strides = [1] + [2] * k
        self.blocks = nn.Sequential(*(ConvBlock(d_out, d_out, s, nn.Hardswish, post_act=False) for s in strides))

    @classmethod
    def possible_tokens(cls, grid, options):
        if options["max_downsample"] < 0:
            raise ValueError("ldp option max_downsample must be >= 0")
        return sorted({a * b for a, b in exact_grids(grid, options["max_downsample"])} | set(square_counts(grid)))

    def forward(self, x: Tensor) -> Tensor:
        y = to_seq(self.blocks(to_map(self.mlp(x), self.grid)))
        return pool_seq(y, self.conv_grid, self.out_grid)
