"""Cost of a connector: parameters, and FLOPs per image as counted by `torch.utils.flop_counter.FlopCounterMode`.

FlopCounterMode counts matrix multiplies, convolutions and attention (2 FLOPs per multiply-add); pooling,
normalisation and activations are not counted.
"""
from __future__ import annotations

import torch
from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of (distinct) parameters of `module`."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def forward_flops(module: nn.Module, d_in: int, grid: tuple[int, int]) -> int:
    """FLOPs of one forward pass on one image's patch features, (1, h*w, d_in)."""
    # lazy: flop_counter loads torch._decomp and triton (~0.4 s), which a grid's validation never needs
    from torch.utils.flop_counter import FlopCounterMode

    param = next(module.parameters(), None)
    x = torch.zeros(1, grid[0] * grid[1], d_in, device=param.device if param is not None else None,
                    dtype=param.dtype if param is not None else None)
    with FlopCounterMode(display=False) as counter:  # not under no_grad: its module tracker needs grad_fns
        module(x)
    return int(counter.get_total_flops())
