"""Image encoders: `build_encoder(cfg, cache_root) -> VisionEncoder` (see registry.py for the specs)."""
from ablate.models.encoders.base import VisionEncoder
from ablate.models.encoders.hub import NotCachedError
from ablate.models.encoders.registry import build_encoder, default_cache_root

__all__ = ["VisionEncoder", "NotCachedError", "build_encoder", "default_cache_root"]
