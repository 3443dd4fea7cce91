"""Values of the shared pieces: grid reshapes, pooling, space-to-depth order, sine-cosine positions, options."""
from __future__ import annotations

import pytest
import torch

from ablate.models.connectors.base import resolve_options, side, square_counts
from ablate.models.connectors.layers import default_heads, halvings, pool_seq, sincos_2d, to_map, to_seq
from ablate.models.connectors.ldp import exact_grids
from ablate.models.connectors.pixel_shuffle import space_to_depth


def test_to_map_and_back_are_row_major():
    x = torch.arange(6.0).reshape(1, 6, 1)  # a 2x3 grid
    assert to_map(x, (2, 3))[0, 0].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert torch.equal(to_seq(to_map(x, (2, 3))), x)


def test_pool_seq_averages_quadrants():
    x = torch.arange(16.0).reshape(1, 16, 1)  # 4x4 grid, rows 0..3
    assert pool_seq(x, (4, 4), (2, 2)).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    assert pool_seq(x, (4, 4), (4, 4)) is x


def test_space_to_depth_groups_each_block():
    x = torch.arange(16.0).reshape(1, 16, 1)
    out = space_to_depth(x, (4, 4), 2)
    assert out.shape == (1, 4, 4)
    assert out[0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]


def test_sincos_positions_are_distinct_and_bounded():
    pos = sincos_2d((6, 7), 30)  # 30 is not a multiple of 4: the last 2 channels are zero
    assert pos.shape == (42, 30)
    assert pos.abs().max() <= 1 and pos[:, 28:].abs().max() == 0
    assert torch.cdist(pos, pos).add(torch.eye(42)).min() > 0.1
    # channels: [sin(row), cos(row), sin(col), cos(col)], 7 frequencies each, the first frequency 1
    assert pos[0, :28].tolist() == [0.0] * 7 + [1.0] * 7 + [0.0] * 7 + [1.0] * 7
    row1 = pos[7]  # row 1, column 0
    assert row1[0].item() == pytest.approx(torch.sin(torch.tensor(1.0)).item()) and row1[14].item() == 0.0


def test_grid_arithmetic():
    assert square_counts((3, 5)) == [1, 4, 9]
    assert side(144) == 12
    with pytest.raises(ValueError):
        side(50)
    assert [halvings(13, k) for k in range(4)] == [13, 7, 4, 2]
    assert exact_grids((6, 10), 2) == [(6, 10), (3, 5), (2, 3)]
    assert default_heads(128) == 8 and default_heads(96) == 4 and default_heads(40) == 2 and default_heads(7) == 1


def test_resolve_options():
    defaults = {"depth": 2, "rate": 0.5, "pool": True, "mode": "a"}
    assert resolve_options("x", defaults, {"rate": 1}) == {"depth": 2, "rate": 1, "pool": True, "mode": "a"}
    for bad in ({"depth": True}, {"pool": 1}, {"mode": 3}, {"rate": "1"}):
        with pytest.raises(ValueError, match="must be"):
            resolve_options("x", defaults, bad)
