"""`pixel-shuffle`: space-to-depth of the patch grid by a factor r, then an MLP (InternVL 1.5, Chen et al. 2024;
Idefics3, Laurençon et al. 2024; nanoVLM's modality projector).

Each r x r block of patches becomes one token of r*r*d_in channels, so tokens = (h/r)*(w/r); r is worked out from
the token count (or fixed with the `factor` option). Possible only when r divides both h and w.
Shape: (B, h*w, d_in) -> (B, (h/r)*(w/r), d_out).
Options: factor (r; 0 = from tokens), depth (2: InternVL's LayerNorm + GELU MLP; 1: nanoVLM's single linear
layer, no norm), hidden (0 = d_out).
"""
from __future__ import annotations

from torch import Tensor, nn

from .base import Connector
from .layers import mlp


def factors(grid: tuple[int, int]) -> list[int]:
    """Every r that divides both sides of the grid."""
    return [r for r in range(1, min(grid) + 1) if grid[0] % r == 0 and grid[1] % r == 0]


def space_to_depth(x: Tensor, grid: tuple[int, int], r: int) -> Tensor:
    """(B, h*w, d) -> (B, (h/r)*(w/r), r*r*d): each r x r block of patches, row-major, becomes one token."""
    (h, w), (b, _, d) = grid, x.shape
    x = x.reshape(b, h // r, r, w // r, r, d).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // r) * (w // r), r * r * d)


class PixelShuffle(Connector):
    OPTIONS = {"factor": 0, "depth": 2, "hidden": 0}
    HOW = "(h/r)*(w/r) for every r dividing both h and w"

    def __init__(self, d_in, d_out, grid, tokens, options):
        super().__init__(d_in, d_out, grid, tokens, options)
        self.r = next(r for r in self._factors(self.grid, options) if (grid[0] // r) * (grid[1] // r) == tokens)
        d = d_in * self.r**2
        norm = [nn.LayerNorm(d)] if options["depth"] > 1 else []
        self.proj = nn.Sequential(*norm, *mlp(d, d_out, options["depth"], options["hidden"]))

    @staticmethod
    def _factors(grid, options) -> list[int]:
        r = options["factor"]
        return [r] if r and grid[0] % r == 0 and grid[1] % r == 0 else [] if r else factors(grid)

    @classmethod
    def possible_tokens(cls, grid, options):
        return sorted((grid[0] // r) * (grid[1] // r) for r in cls._factors(grid, options))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(space_to_depth(x, self.grid, self.r))
