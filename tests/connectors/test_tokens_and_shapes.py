"""Every connector: output shapes over grids and token counts, and token counts refused with the possible ones."""
from __future__ import annotations

import pytest
import torch

from ablate.config.schema import ConnectorConfig
from ablate.models.connectors import ANY, build_connector, check_tokens, connector_names, possible_tokens

GRIDS = [(8, 8), (12, 12), (16, 16), (24, 24), (12, 16)]
TOKENS = [1, 4, 12, 16, 36, 48, 64, 144, 256]
D_IN, D_OUT = 48, 40

ALL = ["linear", "mlp", "avg-pool", "attn-pool", "perceiver", "qformer", "c-abstractor", "ldp", "pixel-shuffle"]


def test_registry_names():
    assert connector_names() == ALL


@pytest.mark.parametrize("name", ALL)
def test_shapes_over_grids_and_tokens(name):
    torch.manual_seed(0)
    built = set()
    for grid in GRIDS:
        possible = possible_tokens(name, grid)
        for tokens in TOKENS:
            if possible != ANY and tokens not in possible:
                with pytest.raises(ValueError, match="possible counts: "):
                    check_tokens(name, tokens, grid)
                continue
            module = build_connector(ConnectorConfig(name=name, tokens=tokens), D_IN, D_OUT, grid)
            out = module(torch.randn(2, grid[0] * grid[1], D_IN))
            assert out.shape == (2, tokens, D_OUT)
            assert torch.isfinite(out).all()
            built.add(tokens)
    assert {64, 144} <= built, f"{name} built only {sorted(built)}"


@pytest.mark.parametrize("name", ["attn-pool", "perceiver", "qformer"])
def test_query_connectors_take_any_count(name):
    assert possible_tokens(name, (8, 8)) == ANY
    module = build_connector(ConnectorConfig(name=name, tokens=77), D_IN, D_OUT, (4, 4))  # more tokens than patches
    assert module(torch.randn(1, 16, D_IN)).shape == (1, 77, D_OUT)
    with pytest.raises(ValueError, match="any n >= 1"):
        check_tokens(name, 0, (4, 4))


@pytest.mark.parametrize(
    "name, grid, expected",
    [
        ("linear", (12, 16), [1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 121, 144, 192]),
        ("mlp", (3, 5), [1, 4, 9, 15]),
        ("avg-pool", (8, 8), [1, 4, 9, 16, 25, 36, 49, 64]),
        ("c-abstractor", (3, 5), [1, 4, 9]),
        ("ldp", (12, 16), [1, 4, 9, 12, 16, 25, 36, 48, 49, 64, 81, 100, 121, 144, 192]),
        ("pixel-shuffle", (16, 16), [1, 4, 16, 64, 256]),
        ("pixel-shuffle", (24, 24), [1, 4, 9, 16, 36, 64, 144, 576]),
        ("pixel-shuffle", (12, 16), [12, 48, 192]),
    ],
)
def test_possible_counts(name, grid, expected):
    assert possible_tokens(name, grid) == expected


@pytest.mark.parametrize(
    "name, tokens, grid, listed",
    [
        ("pixel-shuffle", 144, (16, 16), "possible counts: 1, 4, 16, 64, 256 "),
        ("pixel-shuffle", 64, (12, 16), "possible counts: 12, 48, 192 "),
        ("avg-pool", 144, (8, 8), "possible counts: 1, 4, 9, 16, 25, 36, 49, 64 "),
        ("c-abstractor", 50, (4, 4), "possible counts: 1, 4, 9, 16 "),
        ("linear", 20, (5, 6), "possible counts: 1, 4, 9, 16, 25, 30 "),
        ("mlp", 64, (6, 6), "possible counts: 1, 4, 9, 16, 25, 36 "),
        ("ldp", 20, (6, 10), "possible counts: 1, 4, 6, 9, 15, 16, 25, 36, 60 "),
    ],
)
def test_impossible_counts_are_refused_with_the_possible_ones(name, tokens, grid, listed):
    with pytest.raises(ValueError) as err:
        build_connector(ConnectorConfig(name=name, tokens=tokens), D_IN, D_OUT, grid)
    message = str(err.value)
    assert f"'{name}' cannot give {tokens} tokens from a {grid[0]}x{grid[1]} patch grid" in message
    assert listed in message


def test_options_change_the_possible_counts():
    assert possible_tokens("linear", (8, 8), {"pool": False}) == [64]
    assert possible_tokens("pixel-shuffle", (16, 16), {"factor": 4}) == [16]
    assert possible_tokens("ldp", (12, 16), {"max_downsample": 0}) == possible_tokens("linear", (12, 16))
    with pytest.raises(ValueError, match="possible counts: none"):
        check_tokens("pixel-shuffle", 64, (16, 16), {"factor": 3})
    cfg = ConnectorConfig(name="pixel-shuffle", tokens=16, options={"factor": 4})
    module = build_connector(cfg, D_IN, D_OUT, (16, 16))
    assert module.r == 4


def test_unknown_option_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"no option 'dept'; allowed options: depth \(default 2\), hidden"):
        build_connector(ConnectorConfig(name="mlp", options={"dept": 3}), D_IN, D_OUT, (8, 8))
    with pytest.raises(ValueError, match=r"'linear' has no option 'x'; allowed options: pool \(default True\)$"):
        check_tokens("linear", 4, (8, 8), {"pool": True, "x": 1})


def test_wrongly_typed_option_is_refused():
    with pytest.raises(ValueError, match="option 'depth' must be int"):
        build_connector(ConnectorConfig(name="perceiver", options={"depth": 1.5}), D_IN, D_OUT, (8, 8))


def test_unknown_connector_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown connector 'q-former'; known connectors: linear, mlp"):
        build_connector(ConnectorConfig(name="q-former"), D_IN, D_OUT, (8, 8))


def test_wrong_number_of_patches_is_refused():
    module = build_connector(ConnectorConfig(name="avg-pool", tokens=16), D_IN, D_OUT, (8, 8))
    with pytest.raises(ValueError, match="expected 8x8=64 patches, got 63"):
        module(torch.randn(1, 63, D_IN))
