"""Hugging Face transformers vision towers, picked by the checkpoint's `model_type`:

CLIP (Radford et al., 2021), SigLIP (Zhai et al., 2023), SigLIP 2 (Tschannen et al., 2025; NaFlex patch input),
AIMv2 (Fini et al., 2024), DINOv2 (Oquab et al., 2023; with registers: Darcet et al., 2024).
The zoo's encoders are CLIPVisionModel folders, so they load through here too.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from huggingface_hub import snapshot_download
from torch import nn

from ablate.config.schema import EncoderConfig
from ablate.models.encoders import base
from ablate.models.encoders.base import VisionEncoder
from ablate.models.encoders.hub import resolve, weights_identity
from ablate.models.encoders.posembed import resize_table

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Family:
    cls_name: str          # transformers class
    n_prefix: int          # class token rows before the patches in the outputs
    mean: tuple
    std: tuple
    table: str             # where the absolute position table lives: "embedding" | "parameter" | "none"


FAMILIES: dict[str, Family] = {
    "clip": Family("CLIPVisionModel", 1, base.OPENAI_CLIP_MEAN, base.OPENAI_CLIP_STD, "embedding"),
    "clip_vision_model": Family("CLIPVisionModel", 1, base.OPENAI_CLIP_MEAN, base.OPENAI_CLIP_STD, "embedding"),
    "siglip": Family("SiglipVisionModel", 0, base.HALF, base.HALF, "embedding"),
    "siglip_vision_model": Family("SiglipVisionModel", 0, base.HALF, base.HALF, "embedding"),
    "siglip2": Family("Siglip2VisionModel", 0, base.HALF, base.HALF, "none"),
    "siglip2_vision_model": Family("Siglip2VisionModel", 0, base.HALF, base.HALF, "none"),
    "aimv2": Family("Aimv2VisionModel", 0, base.OPENAI_CLIP_MEAN, base.OPENAI_CLIP_STD, "embedding"),
    "aimv2_vision_model": Family("Aimv2VisionModel", 0, base.OPENAI_CLIP_MEAN, base.OPENAI_CLIP_STD, "embedding"),
    "dinov2": Family("Dinov2Model", 1, base.IMAGENET_MEAN, base.IMAGENET_STD, "parameter"),
    "dinov2_with_registers": Family("Dinov2WithRegistersModel", 1, base.IMAGENET_MEAN, base.IMAGENET_STD, "parameter"),
}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _model_type(folder: Path) -> str:
    config = _read_json(folder / "config.json")
    if "model_type" not in config:
        raise ValueError(f"{folder} has no config.json with a model_type: not a transformers checkpoint")
    return config["model_type"]


def _set_grid(model, family: Family, grid: tuple[int, int], resolution: int) -> None:
    """Interpolate the absolute position table to `grid`, once (identity at the native grid)."""
    emb = model.vision_model.embeddings if hasattr(model, "vision_model") else model.embeddings
    if family.table == "embedding":
        if getattr(model.config, "is_native", False):  # AIMv2 native: sin-cos, computed per input size
            return
        table = resize_table(emb.position_embedding.weight.data, family.n_prefix, grid)
        emb.position_embedding = nn.Embedding(table.shape[0], table.shape[1], _weight=table)
        emb.register_buffer("position_ids", torch.arange(table.shape[0]).expand((1, -1)), persistent=False)
        for name, value in (("num_patches", grid[0] * grid[1]), ("num_positions", table.shape[0]),
                            ("image_size", resolution)):
            if hasattr(emb, name):
                setattr(emb, name, value)
    elif family.table == "parameter":
        table = resize_table(emb.position_embeddings.data[0], family.n_prefix, grid)
        emb.position_embeddings = nn.Parameter(table.unsqueeze(0))


class HFVisionEncoder(VisionEncoder):
    """A transformers vision tower at `cfg.resolution` with its own normalisation."""

    def __init__(self, cfg: EncoderConfig, ref: str, identity: str | None = None):
        location = resolve(ref, "image encoder")
        folder = Path(location)
        if not folder.exists():  # online hub id: fetch configs and one weight format into the cache first
            folder = Path(snapshot_download(ref, allow_patterns=["*.json", "*.safetensors"]))
            if not any(folder.glob("*.safetensors")):
                folder = Path(snapshot_download(ref, allow_patterns=["*.json", "*.bin"]))
        model_type = _model_type(folder)
        if model_type not in FAMILIES:
            raise ValueError(f"unsupported vision model_type {model_type!r} in {folder}; "
                             f"supported: {', '.join(sorted(FAMILIES))}")
        family = FAMILIES[model_type]
        model = getattr(transformers, family.cls_name).from_pretrained(str(folder))
        config = model.config
        processor = _read_json(folder / "preprocessor_config.json")
        mean = processor.get("image_mean", family.mean)
        std = processor.get("image_std", family.std)
        super().__init__(cfg, mean, std, config.patch_size, identity or weights_identity(folder))
        if cfg.keep_cls and family.n_prefix == 0:
            raise ValueError(f"keep_cls=True but {model_type} has no class token; set keep_cls: false")
        self.model = model.eval()
        self.family = family
        self.model_type = model_type
        self.n_register = int(getattr(config, "num_register_tokens", 0) or 0)
        side = cfg.resolution // config.patch_size
        if side < 1:
            raise ValueError(f"resolution {cfg.resolution} is smaller than the patch size {config.patch_size}")
        self._grid = (side, side)
        native = getattr(config, "image_size", None)
        self.native_grid = ((native // config.patch_size,) * 2 if native
                            else (round(config.num_patches ** 0.5),) * 2)
        _set_grid(self.model, family, self._grid, cfg.resolution)
        if self._grid != self.native_grid and family.table != "none" and not getattr(config, "is_native", False):
            log.info("encoder %s: position embeddings interpolated (bicubic) from a %dx%d to a %dx%d patch grid "
                     "(%d px, patch %d)", cfg.name, *self.native_grid, *self._grid, cfg.resolution, config.patch_size)
        log.info("encoder %s: %s, %.1fM parameters, dtype %s, %dx%d patches of %d px", cfg.name, family.cls_name,
                 sum(p.numel() for p in model.parameters()) / 1e6, model.dtype, *self._grid, config.patch_size)

    def _run(self, pixel_values: torch.Tensor, hidden: bool):
        if self.family.cls_name == "Siglip2VisionModel":
            return self.model(**self._patchify(pixel_values), output_hidden_states=hidden)
        return self.model(pixel_values=pixel_values, output_hidden_states=hidden)

    def _patchify(self, pixel_values: torch.Tensor) -> dict:
        """SigLIP 2 NaFlex input: (n, h*w, p*p*3) channels-last patches, all valid, grid h x w."""
        n, c, _, _ = pixel_values.shape
        p, (h, w) = self.patch_size, self._grid
        x = pixel_values[:, :, : h * p, : w * p].reshape(n, c, h, p, w, p)
        x = x.permute(0, 2, 4, 3, 5, 1).reshape(n, h * w, p * p * c)
        return {
            "pixel_values": x,
            "pixel_attention_mask": torch.ones(n, h * w, dtype=torch.long, device=x.device),
            "spatial_shapes": torch.tensor([[h, w]] * n, dtype=torch.long, device=x.device),
        }

    def _features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch features of `cfg.feature_layer`: `last` (the model's output), `penultimate` (the second-to-last
        block's output, LLaVA's choice), a hidden-state index (0: the embeddings; -1: the last block's output, before
        any final norm), or a list of these, concatenated along the feature dimension (in the list's order)."""
        layer = self.cfg.feature_layer
        layers = list(layer) if isinstance(layer, tuple) else [layer]
        out = self._run(pixel_values, hidden=layers != ["last"])
        feats = torch.cat([out.last_hidden_state if layer == "last" else
                           out.hidden_states[-2 if layer == "penultimate" else layer] for layer in layers], dim=-1)
        skip = self.family.n_prefix + self.n_register
        patches = feats[:, skip:]
        if self.cfg.keep_cls:
            return torch.cat([feats[:, :1], patches], dim=1)
        return patches
