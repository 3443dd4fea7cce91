"""Fused encoders: one encoder axis value that stands for several encoders whose features are concatenated per patch
(Prismatic VLMs' "dinosiglip": DINOv2 + SigLIP; Cambrian-1 aggregates several). Plain data, no torch.

Written as the encoder names joined with `+` (`encoder.name: "hf:facebook/dinov2-base+hf:google/siglip-base-patch16-
224"`, spaces around `+` allowed); `encoder.resolutions` optionally gives each its own resolution, in order (left
out: each at `encoder.resolution`). Each member keeps its own normalisation; their patch grids are brought to the
smallest of them (adaptive average pooling: `FUSED_GRID_RULE`) and their features concatenated per patch, before the
connector (docs/backbones.md "Fused encoders").
"""
from __future__ import annotations

from ablate.config.schema import EncoderConfig

SEPARATOR = "+"
FUSED_GRID_RULE = ("each encoder's patch grid is average-pooled (adaptive, area-weighted) to the smallest grid "
                   "among them, then the features are concatenated per patch")


def member_names(name: str) -> list[str]:
    """The encoder names a (possibly fused) `encoder.name` stands for: one for a plain name."""
    return [part.strip() for part in name.split(SEPARATOR)] if SEPARATOR in name else [name]


def is_fusion(cfg: EncoderConfig) -> bool:
    return SEPARATOR in cfg.name


def members(cfg: EncoderConfig) -> list[EncoderConfig]:
    """One plain `EncoderConfig` per fused encoder, each at its own resolution (`encoder.resolutions`, else
    `encoder.resolution`); the config itself when it is not a fusion."""
    if not is_fusion(cfg):
        return [cfg]
    names = member_names(cfg.name)
    resolutions = cfg.resolutions or [cfg.resolution] * len(names)
    return [cfg.model_copy(update={"name": name, "resolution": res, "resolutions": None})
            for name, res in zip(names, resolutions)]


def fused_grid(grids: list[tuple[int, int]]) -> tuple[int, int]:
    """The grid a fusion's features are pooled to: the smallest member grid (fewest patches; then the first)."""
    return min(grids, key=lambda g: g[0] * g[1])


def problems(cfg: EncoderConfig) -> list[tuple[str, str, list | None]]:
    """What a fused (or plain) encoder config cannot be, as (key, message, allowed values); empty when fine."""
    out: list[tuple[str, str, list | None]] = []
    names = member_names(cfg.name)
    if not is_fusion(cfg):
        if cfg.resolutions is not None:
            out.append(("encoder.resolutions", "encoder.resolutions gives the resolution of each fused encoder: "
                        "name several encoders joined with '+' in encoder.name, or use encoder.resolution", None))
        return out
    if any(not n for n in names) or len(set(names)) != len(names):
        out.append(("encoder.name", f"a fusion names two or more different encoders joined with '+': got "
                    f"{cfg.name!r}", None))
    if cfg.resolutions is not None and len(cfg.resolutions) != len(names):
        out.append(("encoder.resolutions", f"encoder.resolutions has {len(cfg.resolutions)} values for the "
                    f"{len(names)} fused encoders of {cfg.name!r}: give one per encoder, in order", None))
    if cfg.image_handling == "slice":
        out.append(("encoder.image_handling", "a fused encoder takes each image whole (its encoders' slice layouts "
                    "would differ by resolution): use resize or pad", ["resize", "pad"]))
    if cfg.keep_cls:
        out.append(("encoder.keep_cls", "a fused encoder concatenates patch features only: leave keep_cls out",
                    [False]))
    return out
