"""`c-abstractor`: the convolutional abstractor of Honeybee (Cha et al. 2024, "Honeybee: Locality-enhanced
Projector for Multimodal LLM"), MM1's final connector choice.

A learnable position embedding is added to the patch grid; `depth` ResNet-style (RegNet bottleneck) blocks run at
`hidden` width, adaptive average pooling takes the grid to s x s, `depth` more blocks follow, and a two-layer SiLU
MLP projects to the LLM width. Shape: (B, h*w, d_in) -> (B, n, d_out), n = s*s with s <= min(h, w).
Options: depth (blocks per stage, 3 as in Honeybee), hidden (0 = d_out), pos (learnable positions, true).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Connector, side, square_counts
from .layers import ConvBlock, mlp, to_map, to_seq


class CAbstractor(Connector):
    OPTIONS = {"depth": 3, "hidden": 0, "pos": True}
    HOW = "a square s*s with s <= min(h, w)"

    def __init__(self, d_in, d_out, grid, tokens, options):
        super().__init__(d_in, d_out, grid, tokens, options)
        hidden, depth = options["hidden"] or d_out, options["depth"]
        self.out_grid = (side(tokens),) * 2
        self.pos = nn.Parameter(torch.randn(1, grid[0] * grid[1], d_in) * 0.02) if options["pos"] else None
        self.stage1 = nn.Sequential(*(ConvBlock(d_in if i == 0 else hidden, hidden) for i in range(depth)))
        self.stage2 = nn.Sequential(*(ConvBlock(hidden, hidden) for _ in range(depth)))
        self.proj = mlp(hidden, d_out, 2, act=nn.SiLU)

    @classmethod
    def possible_tokens(cls, grid, options):
        return square_counts(grid)

    def forward(self, x: Tensor) -> Tensor:
        if self.pos is not None:
            x = x + self.pos
        y = self.stage1(to_map(x, self.grid))
        y = self.stage2(F.adaptive_avg_pool2d(y, self.out_grid))
        return self.proj(to_seq(y))
