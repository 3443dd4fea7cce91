"""Look connectors up by name, check token counts against a patch grid, build them from a `ConnectorConfig`."""
from __future__ import annotations

import importlib
from typing import Any

from ablate.config.schema import ConnectorConfig

from .base import ANY, Connector, resolve_options
from .registry import CONNECTORS


def connector_names() -> list[str]:
    """Registered connector names, in registry order."""
    return list(CONNECTORS)


def connector_class(name: str) -> type[Connector]:
    """The class registered under `name`; an unknown name raises `ValueError` listing the known ones."""
    if name not in CONNECTORS:
        raise ValueError(f"unknown connector '{name}'; known connectors: {', '.join(CONNECTORS)}")
    module, cls = CONNECTORS[name].split(":")
    module = module if "." in module else f"{__package__}.{module}"  # dotted: a module outside this package
    return getattr(importlib.import_module(module), cls)


def _grid(grid) -> tuple[int, int]:
    h, w = (int(v) for v in grid)
    if h < 1 or w < 1:
        raise ValueError(f"patch grid must be at least 1x1, got {h}x{w}")
    return h, w


def possible_tokens(name: str, grid: tuple[int, int], options: dict[str, Any] | None = None) -> list[int] | str:
    """Sorted token counts `name` can give for an h x w patch grid, or "any n >= 1" for query-based connectors."""
    cls = connector_class(name)
    return cls.possible_tokens(_grid(grid), resolve_options(name, cls.OPTIONS, options))


def check_tokens(name: str, tokens: int, grid: tuple[int, int], options: dict[str, Any] | None = None) -> None:
    """Raise `ValueError` if `name` cannot give `tokens` visual tokens from `grid`, listing the counts it can."""
    cls = connector_class(name)
    h, w = grid = _grid(grid)
    options = resolve_options(name, cls.OPTIONS, options)
    if cls.allows(tokens, grid, options):
        return
    possible = cls.possible_tokens(grid, options)
    listed = possible if possible == ANY else ", ".join(map(str, possible)) or "none"
    raise ValueError(
        f"connector '{name}' cannot give {tokens} tokens from a {h}x{w} patch grid; possible counts: {listed} "
        f"(tokens = {cls.HOW})"
    )


def build_connector(cfg: ConnectorConfig, d_in: int, d_out: int, grid: tuple[int, int]) -> Connector:
    """The connector `cfg.name` mapping (B, h*w, d_in) -> (B, cfg.tokens, d_out); bad tokens or options raise."""
    check_tokens(cfg.name, cfg.tokens, grid, cfg.options)
    cls = connector_class(cfg.name)
    return cls(d_in, d_out, _grid(grid), cfg.tokens, resolve_options(cfg.name, cls.OPTIONS, cfg.options))
