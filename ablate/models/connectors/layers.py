"""Building blocks shared by several connectors: projections, attention, conv blocks, grids and positions."""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def mlp(d_in: int, d_out: int, depth: int = 2, hidden: int | None = None,
        act: type[nn.Module] = nn.GELU) -> nn.Sequential:
    """`depth` linear layers with `act` between them (depth 1: one linear layer; depth 2: LLaVA-1.5's MLP)."""
    if depth < 1:
        raise ValueError(f"projection depth must be >= 1, got {depth}")
    hidden = hidden or d_out
    dims = [d_in] + [hidden] * (depth - 1) + [d_out]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        if i:
            layers.append(act())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


def default_heads(width: int) -> int:
    """The most heads in (8, 4, 2, 1) that divide `width` with at least 16 channels per head."""
    return next(h for h in (8, 4, 2, 1) if width % h == 0 and (width // h >= 16 or h == 1))


class Attention(nn.Module):
    """Multi-head attention over `scaled_dot_product_attention`, with keys and values given apart (Vaswani et al.)."""

    def __init__(self, dim: int, heads: int, d_kv: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        d_kv = d_kv or dim
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(d_kv, dim), nn.Linear(d_kv, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        def split(t: Tensor) -> Tensor:   # (B, n, d) -> (B, heads, n, d / heads)
            return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

        o = F.scaled_dot_product_attention(split(self.q(query)), split(self.k(key)), split(self.v(value)))
        return self.out(o.transpose(1, 2).flatten(2))


def to_map(x: Tensor, grid: tuple[int, int]) -> Tensor:
    """(B, h*w, d) -> (B, d, h, w)."""
    h, w = grid
    if x.shape[1] != h * w:
        raise ValueError(f"expected {h}x{w}={h * w} patches, got {x.shape[1]}")
    return x.transpose(1, 2).unflatten(2, (h, w))


def to_seq(x: Tensor) -> Tensor:
    """(B, d, h, w) -> (B, h*w, d), row-major."""
    return x.flatten(2).transpose(1, 2)


def pool_seq(x: Tensor, grid: tuple[int, int], out: tuple[int, int]) -> Tensor:
    """Adaptive average pooling of a patch sequence from `grid` to `out` (a no-op when they match)."""
    if tuple(grid) == tuple(out):
        return x
    return to_seq(F.adaptive_avg_pool2d(to_map(x, grid), out))


def sincos_2d(grid: tuple[int, int], dim: int) -> Tensor:
    """Fixed 2D sine-cosine positions (h*w, dim): half the channels encode the row, half the column (MAE, He et al.).

    Channels: [sin(row), cos(row), sin(col), cos(col)], dim // 4 frequencies each, zero-padded up to `dim`."""
    h, w = grid
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / max(quarter, 1))
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
    parts = []
    for pos in (rows.flatten(), cols.flatten()):
        angle = pos[:, None] * omega[None, :]
        parts += [angle.sin(), angle.cos()]
    emb = torch.cat(parts, dim=1)
    return F.pad(emb, (0, dim - emb.shape[1]))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels at each position of a (B, C, H, W) map."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SqueezeExcite(nn.Module):
    """Channel gating from globally pooled features (Hu et al., 2018)."""

    def __init__(self, channels: int, ratio: float = 0.25):
        super().__init__()
        mid = max(1, int(channels * ratio))
        self.reduce, self.expand = nn.Conv2d(channels, mid, 1), nn.Conv2d(mid, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        gate = self.expand(F.silu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class ConvBlock(nn.Module):
    """Pointwise -> depthwise 3x3 (stride 1 or 2) -> squeeze-excite -> pointwise, with a residual at stride 1.

    This is both Honeybee's RegNet bottleneck (group size 1, SiLU, LayerNorm2d) and MobileVLM's MobileNetV3
    inverted residual (expansion 1, Hardswish, no activation after the sum): the same block, different activations.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, act: type[nn.Module] = nn.SiLU, post_act: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, bias=False), LayerNorm2d(c_out), act(),
            nn.Conv2d(c_out, c_out, 3, stride=stride, padding=1, groups=c_out, bias=False), LayerNorm2d(c_out), act(),
            SqueezeExcite(c_out),
            nn.Conv2d(c_out, c_out, 1, bias=False), LayerNorm2d(c_out),
        )
        self.shortcut = None
        if stride == 1:
            self.shortcut = (nn.Identity() if c_in == c_out
                             else nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), LayerNorm2d(c_out)))
        self.post_act = act() if post_act else nn.Identity()  # RegNet activates after the sum; MobileNetV3 does not

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        return self.post_act(y + self.shortcut(x) if self.shortcut is not None else y)


def halvings(n: int, k: int) -> int:
    """Length of a side of n after k stride-2, padding-1, kernel-3 convolutions: ceil(n / 2^k)."""
    return math.ceil(n / 2**k)
