"""Image encoders by spec: `zoo:<objective>-<size>`, `hf:<hub id or path>`, `timm:<name>[@random|@file]`.

The factory is the only place that knows the concrete classes (the prismatic-vlms registry pattern).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ablate.config.schema import EncoderConfig
from ablate.models.encoders.base import VisionEncoder


def default_cache_root() -> Path:
    """`$ABLATE_CACHE`, else `~/.cache/ablate`."""
    return Path(os.environ.get("ABLATE_CACHE", "~/.cache/ablate")).expanduser()


def _hf(cfg: EncoderConfig, ref: str, cache_root: Path) -> VisionEncoder:
    from ablate.models.encoders.hf import HFVisionEncoder

    return HFVisionEncoder(cfg, ref)


def _timm(cfg: EncoderConfig, ref: str, cache_root: Path) -> VisionEncoder:
    from ablate.models.encoders.timm_encoder import TimmVisionEncoder

    return TimmVisionEncoder(cfg, ref)


def _zoo(cfg: EncoderConfig, ref: str, cache_root: Path) -> VisionEncoder:
    from ablate.models.encoders.hf import HFVisionEncoder
    from ablate.zoo import ensure_built

    folder = ensure_built(ref, cache_root)
    return HFVisionEncoder(cfg, str(folder), identity=folder.name)


KINDS: dict[str, Callable[[EncoderConfig, str, Path], VisionEncoder]] = {"hf": _hf, "timm": _timm, "zoo": _zoo}


def build_encoder(cfg: EncoderConfig, cache_root: Path | None = None) -> VisionEncoder:
    """A `VisionEncoder` for `cfg.name`, in eval mode, position embeddings set for `cfg.resolution`."""
    kind, sep, ref = cfg.name.partition(":")
    if not sep or kind not in KINDS or not ref:
        raise ValueError(f"encoder spec {cfg.name!r} should be one of: zoo:<objective>-<size> (e.g. zoo:clip-s), "
                         f"hf:<hub id or local folder>, timm:<model name>[@random|@weights file]")
    return KINDS[kind](cfg, ref, Path(cache_root) if cache_root is not None else default_cache_root())
