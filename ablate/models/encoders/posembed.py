"""Absolute position embeddings at a new patch grid: 2D bicubic interpolation, as in ViT (Dosovitskiy et al.,
2021, section 3.2, "fine-tuning and higher resolution") and DINOv2's `interpolate_pos_encoding`.

Done once when an encoder is built for a resolution other than its pre-training one; identity at the native grid.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def resize_table(table: torch.Tensor, n_prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """`(n_prefix + g*g, dim)` -> `(n_prefix + h*w, dim)`; prefix rows (class token) kept as they are."""
    prefix, patches = table[:n_prefix], table[n_prefix:]
    side = math.isqrt(patches.shape[0])
    if side * side != patches.shape[0]:
        raise ValueError(f"position table of {patches.shape[0]} patch rows is not a square grid")
    if (side, side) == tuple(grid):
        return table.clone()
    dim = patches.shape[1]
    square = patches.reshape(1, side, side, dim).permute(0, 3, 1, 2).float()
    resized = F.interpolate(square, size=tuple(grid), mode="bicubic", align_corners=False)
    resized = resized.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], dim).to(table.dtype)
    return torch.cat([prefix, resized], dim=0)
