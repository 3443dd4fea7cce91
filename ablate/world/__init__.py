"""The embedded, procedurally generated image-text world (shapes, colours, positions and a rendered word).

`build_world(cfg, cache_root) -> World`; see docs/data.md for what it writes and why. The names below are loaded on
first use, so `ablate.world.identity` (the world's hash, for cell ids) imports without the tokenizer stack.
"""
from __future__ import annotations

import importlib

_WHERE = {"World": "ablate.world.build", "build_world": "ablate.world.build", "world_hash": "ablate.world.identity"}

__all__ = ["World", "build_world", "world_hash"]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'ablate.world' has no attribute {name!r}")
