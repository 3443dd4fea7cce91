"""The embedded, procedurally generated image-text world (shapes, colours, positions and a rendered word).

`build_world(cfg, cache_root) -> World`; see docs/data.md for what it writes and why.
"""
from ablate.world.build import World, build_world, world_hash

__all__ = ["World", "build_world", "world_hash"]
