"""A connector from outside the package joins through one registry line (the same path as a new file inside)."""
from __future__ import annotations

import textwrap

import torch

from ablate.config.schema import ConnectorConfig
from ablate.models.connectors import build_connector, check_tokens, connector_names, possible_tokens, registry

PLUGIN = '''
"""`token-mean`: every patch averaged into one token, then a linear layer (a test connector)."""
from torch import nn
from ablate.models.connectors.base import Connector

class TokenMean(Connector):
    OPTIONS = {"scale": 1.0}
    HOW = "1"

    def __init__(self, d_in, d_out, grid, tokens, options):
        super().__init__(d_in, d_out, grid, tokens, options)
        self.proj = nn.Linear(d_in, d_out)

    @classmethod
    def possible_tokens(cls, grid, options):
        return [1]

    def forward(self, x):
        return self.proj(x.mean(1, keepdim=True)) * self.options["scale"]
'''


def test_a_new_connector_is_one_file_and_one_line(tmp_path, monkeypatch):
    (tmp_path / "my_connectors").mkdir()
    (tmp_path / "my_connectors" / "__init__.py").write_text("")
    (tmp_path / "my_connectors" / "token_mean.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.CONNECTORS, "token-mean", "my_connectors.token_mean:TokenMean")

    assert connector_names()[-1] == "token-mean"
    assert possible_tokens("token-mean", (4, 4)) == [1]
    module = build_connector(ConnectorConfig(name="token-mean", tokens=1, options={"scale": 2.0}), 8, 5, (4, 4))
    x = torch.randn(2, 16, 8)
    assert torch.allclose(module(x), 2 * module.proj(x.mean(1, keepdim=True)))
    try:
        check_tokens("token-mean", 4, (4, 4))
    except ValueError as err:
        assert "possible counts: 1 (tokens = 1)" in str(err)
    else:
        raise AssertionError("4 tokens should be refused")
