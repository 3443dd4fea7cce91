"""Image encoders by spec: `zoo:<objective>-<size>`, `hf:<hub id or path>`, `timm:<name>[@random|@file]`.

The factory is the only place that knows the concrete classes (the prismatic-vlms registry pattern).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ablate.config.schema import EncoderConfig
from ablate.config.spec import ENCODER_FORMS, Spec, SpecError
from ablate.models.encoders.base import VisionEncoder
from ablate.models.encoders.hf import HFVisionEncoder
from ablate.models.encoders.timm_encoder import TimmVisionEncoder
from ablate.zoo import ensure_built


def default_cache_root() -> Path:
    """`$ABLATE_CACHE`, else `~/.cache/ablate`."""
    return Path(os.environ.get("ABLATE_CACHE", "~/.cache/ablate")).expanduser()


def _hf(cfg: EncoderConfig, spec: Spec, cache_root: Path) -> VisionEncoder:
    return HFVisionEncoder(cfg, spec.name)


def _timm(cfg: EncoderConfig, spec: Spec, cache_root: Path) -> VisionEncoder:
    return TimmVisionEncoder(cfg, spec.ref)


def _zoo(cfg: EncoderConfig, spec: Spec, cache_root: Path) -> VisionEncoder:
    folder = ensure_built(spec.name, cache_root)
    return HFVisionEncoder(cfg, str(folder), identity=folder.name)


KINDS: dict[str, Callable[[EncoderConfig, Spec, Path], VisionEncoder]] = {"hf": _hf, "timm": _timm, "zoo": _zoo}


def build_encoder(cfg: EncoderConfig, cache_root: Path | None = None) -> VisionEncoder:
    """A `VisionEncoder` for `cfg.name`, in eval mode, position embeddings set for `cfg.resolution`."""
    try:
        spec = Spec.parse(cfg.name, tuple(KINDS))
    except SpecError:
        raise ValueError(f"encoder spec {cfg.name!r} should be one of: {', '.join(ENCODER_FORMS)}") from None
    return KINDS[spec.family](cfg, spec, Path(cache_root) if cache_root is not None else default_cache_root())
