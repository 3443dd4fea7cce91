"""`perceiver`: a Perceiver resampler (Flamingo, Alayrac et al. 2022; the Qwen-VL resampler, Bai et al. 2023).

Learnable latent queries pass through `depth` layers of [cross-attention, feed-forward]; as in Flamingo the keys
and values are the patch features concatenated with the latents, and as in Qwen-VL fixed 2D sine-cosine positions
of the patch grid are added to the patch keys (not the values). A final linear layer maps to the LLM width.
Shape: (B, h*w, d_in) -> (B, n, d_out) for any n >= 1.
Options: depth (layers, 2), width (0 = d_out), heads (0 = auto), ffn_mult (feed-forward expansion, 2).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Connector
from .layers import Attention, default_heads, mlp, sincos_2d


class ResamplerLayer(nn.Module):
    def __init__(self, width: int, heads: int, ffn_mult: int):
        super().__init__()
        self.norm_x, self.norm_q, self.norm_ff = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ff = mlp(width, width, 2, width * ffn_mult)

    def forward(self, latents: Tensor, x: Tensor, pos: Tensor) -> Tensor:
        q, x = self.norm_q(latents), self.norm_x(x)
        keys = torch.cat([x + pos, q], dim=1)
        values = torch.cat([x, q], dim=1)
        latents = latents + self.attn(q, keys, values)
        return latents + self.ff(self.norm_ff(latents))


class Perceiver(Connector):
    OPTIONS = {"depth": 2, "width": 0, "heads": 0, "ffn_mult": 2}
    HOW = "any n >= 1 (one latent query per token)"

    def __init__(self, d_in, d_out, grid, tokens, options):
        super().__init__(d_in, d_out, grid, tokens, options)
        width = options["width"] or d_out
        heads = options["heads"] or default_heads(width)
        self.inp = nn.Linear(d_in, width)
        self.register_buffer("pos", sincos_2d(self.grid, width), persistent=False)
        self.latents = nn.Parameter(torch.randn(tokens, width) * 0.02)
        self.layers = nn.ModuleList(ResamplerLayer(width, heads, options["ffn_mult"]) for _ in range(options["depth"]))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, d_out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.inp(x)
        latents = self.latents.expand(x.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, x, self.pos)
        return self.out(self.norm(latents))
