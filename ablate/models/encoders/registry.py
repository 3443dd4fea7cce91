"""Image encoders by spec: `build_encoder(cfg, cache_root)` asks the spec's family (`ablate.models.families`) to
build it: `zoo:<objective>-<size>`, `hf:<hub id or path>`, `timm:<name>[@random|@file]`, and whatever else is
registered there (the prismatic-vlms registry pattern: the family objects own construction)."""
from __future__ import annotations

import os
from pathlib import Path

from ablate.config import fusion
from ablate.config.schema import EncoderConfig
from ablate.config.spec import SpecError
from ablate.models import families
from ablate.models.encoders.base import VisionEncoder
from ablate.models.encoders.fused import FusedEncoder


def default_cache_root() -> Path:
    """`$ABLATE_CACHE`, else `~/.cache/ablate`."""
    return Path(os.environ.get("ABLATE_CACHE", "~/.cache/ablate")).expanduser()


def build_encoder(cfg: EncoderConfig, cache_root: Path | None = None) -> VisionEncoder:
    """A `VisionEncoder` for `cfg.name`, in eval mode, position embeddings set for `cfg.resolution`; for a fusion
    (`a+b`, ablate.config.fusion) a `FusedEncoder` over each encoder at its own resolution."""
    if fusion.is_fusion(cfg):
        return FusedEncoder(cfg, [build_encoder(member, cache_root) for member in fusion.members(cfg)])
    try:
        spec, family = families.parse(cfg.name, families.ENCODER)
    except SpecError:
        raise ValueError(f"encoder spec {cfg.name!r} should be one of: "
                         f"{', '.join(families.forms(families.ENCODER))}") from None
    return family.build_encoder(cfg, spec, Path(cache_root) if cache_root is not None else default_cache_root())
