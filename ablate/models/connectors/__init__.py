"""Vision-language connectors: patch features (B, h*w, d_in) -> visual tokens (B, tokens, d_out).

One file per connector, listed in `registry.py`; see docs/connectors.md for the table and how to add one.
"""
from .base import ANY, Connector
from .factory import build_connector, check_tokens, connector_class, connector_names, possible_tokens
from .measure import count_parameters, forward_flops

__all__ = [
    "ANY",
    "Connector",
    "build_connector",
    "check_tokens",
    "connector_class",
    "connector_names",
    "count_parameters",
    "forward_flops",
    "possible_tokens",
]
