"""Every connector: gradients reach every parameter; parameter counts and FLOPs per image, with exact values
where they follow from a formula, and how FLOPs move with the token count."""
from __future__ import annotations

import pytest
import torch

from ablate.config.schema import ConnectorConfig
from ablate.models.connectors import build_connector, connector_names, count_parameters, forward_flops
from ablate.models.connectors.layers import ConvBlock

D_IN, D_OUT = 96, 128  # the reference size of docs/connectors.md


def build(name, tokens, grid, d_in=D_IN, d_out=D_OUT, **options):
    return build_connector(ConnectorConfig(name=name, tokens=tokens, options=options), d_in, d_out, grid)


@pytest.mark.parametrize("name", connector_names())
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    module = build(name, 16, (8, 8), d_in=32, d_out=24)
    out = module(torch.randn(3, 64, 32))
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in module.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"{name}: no gradient for {missing}"


@pytest.mark.parametrize("name", connector_names())
def test_parameters_and_flops_are_reported(name):
    module = build(name, 64, (16, 16))
    assert count_parameters(module) > 0
    assert forward_flops(module, D_IN, (16, 16)) > 0


def test_exact_parameter_counts():
    grid = (16, 16)
    assert count_parameters(build("linear", 64, grid)) == D_IN * D_OUT + D_OUT
    two_layers = D_IN * D_OUT + D_OUT + D_OUT * D_OUT + D_OUT
    assert count_parameters(build("mlp", 64, grid)) == two_layers
    assert count_parameters(build("avg-pool", 64, grid)) == two_layers
    r2 = 4 * D_IN  # pixel-shuffle r=2: LayerNorm, then the MLP on 4*d_in channels
    assert count_parameters(build("pixel-shuffle", 64, grid)) == 2 * r2 + r2 * D_OUT + D_OUT + D_OUT * D_OUT + D_OUT
    assert count_parameters(build("pixel-shuffle", 64, grid, depth=1)) == r2 * D_OUT + D_OUT  # nanoVLM: one linear


@pytest.mark.parametrize("name, per_token", [("attn-pool", D_IN), ("perceiver", D_OUT), ("qformer", D_OUT)])
def test_query_connectors_grow_by_one_query_per_token(name, per_token):
    assert count_parameters(build(name, 144, (16, 16))) - count_parameters(build(name, 64, (16, 16))) == 80 * per_token


def test_grid_connectors_do_not_depend_on_the_token_count_except_through_the_grid():
    for name in ("linear", "mlp", "avg-pool"):
        assert count_parameters(build(name, 16, (24, 24))) == count_parameters(build(name, 144, (24, 24))), name
    # ldp: 144 tokens from 24x24 is one halving, 16 tokens two halvings (6x6) then pooling: one more block
    one_block = count_parameters(ConvBlock(D_OUT, D_OUT, 2))
    assert count_parameters(build("ldp", 16, (24, 24))) - count_parameters(build("ldp", 144, (24, 24))) == one_block
    # c-abstractor's learnable positions have one vector per patch
    bigger, smaller = (count_parameters(build("c-abstractor", 64, grid)) for grid in ((24, 24), (16, 16)))
    assert bigger - smaller == (576 - 256) * D_IN


def test_exact_flops():
    grid = (16, 16)
    assert forward_flops(build("linear", 64, grid), D_IN, grid) == 2 * 64 * D_IN * D_OUT
    assert forward_flops(build("linear", 256, grid), D_IN, grid) == 2 * 256 * D_IN * D_OUT
    assert forward_flops(build("mlp", 64, grid), D_IN, grid) == 2 * 64 * (D_IN * D_OUT + D_OUT * D_OUT)
    # pixel-shuffle: the first layer sees every patch whatever r is; the second one token per output
    assert forward_flops(build("pixel-shuffle", 64, grid), D_IN, grid) == 2 * (256 * D_IN * D_OUT + 64 * D_OUT * D_OUT)


@pytest.mark.parametrize("name", [n for n in connector_names() if n != "ldp"])
def test_flops_grow_with_tokens(name):
    grid = (24, 24)
    flops = [forward_flops(build(name, n, grid), D_IN, grid) for n in (16, 64, 144)]
    assert flops[0] < flops[1] < flops[2], flops


def test_ldp_flops_shrink_with_tokens():
    """Fewer tokens mean more stride-2 blocks, all after the MLP that sees every patch (documented)."""
    grid = (16, 16)
    flops = {n: forward_flops(build("ldp", n, grid), D_IN, grid) for n in (16, 64, 256)}
    assert flops[16] > flops[64] > flops[256]
    assert flops[256] > 2 * 256 * (D_IN * D_OUT + D_OUT * D_OUT)  # the MLP alone


def test_flops_do_not_depend_on_batch_or_mode():
    module = build("perceiver", 64, (16, 16))
    before = forward_flops(module, D_IN, (16, 16))
    module.eval()
    assert forward_flops(module, D_IN, (16, 16)) == before
