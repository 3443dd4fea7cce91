"""timm image encoders: EVA-02 / EVA-CLIP (Fang et al., 2023), NFNet (Brock et al., 2021), any timm ViT or CNN.

Spec: `timm:<name>` (pretrained weights through the Hugging Face cache), `timm:<name>@random` (random init,
seeded: architecture only), `timm:<name>@/path/weights.safetensors` (weights from a local file).
ViT-like models are resized with timm's `set_input_size` (bicubic resampling of absolute position embeddings, and
RoPE grids for EVA-02); CNNs take any size. Features: `forward_features` (last, normed) or the second-to-last
block / stage (penultimate); CNN maps are flattened row-major.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from huggingface_hub import try_to_load_from_cache

from ablate.config.schema import EncoderConfig
from ablate.models.encoders.base import VisionEncoder
from ablate.models.encoders.hub import NotCachedError, hub_offline, not_cached_message, weights_identity

log = logging.getLogger(__name__)


def _hub_cached(repo: str) -> bool:
    return any(isinstance(try_to_load_from_cache(repo, f), str)
               for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"))


class TimmVisionEncoder(VisionEncoder):
    def __init__(self, cfg: EncoderConfig, ref: str):
        import timm  # lazy: timm (~3 s) only for timm: encoders

        name, _, weights = ref.partition("@")
        kwargs: dict = {"num_classes": 0}
        if weights == "random":
            identity = "random-seed0"
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model = timm.create_model(name, pretrained=False, **kwargs)
        elif weights:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"timm weights file {weights!r} does not exist")
            identity = weights_identity(path)
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
        else:
            pcfg = timm.models.get_pretrained_cfg(name)
            repo = getattr(pcfg, "hf_hub_id", None) if pcfg is not None else None
            if hub_offline() and (repo is None or not _hub_cached(repo)):
                raise NotCachedError(not_cached_message(repo or name, "timm image encoder").replace(
                    "`hf:/path/to/folder` saved with save_pretrained",
                    f"`timm:{name}@/path/to/weights.safetensors`, or `timm:{name}@random`"))
            identity = f"hub:{repo}"
            model = timm.create_model(name, pretrained=True, **kwargs)
        pretrained = model.pretrained_cfg
        patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
        patch = int(patch[0] if isinstance(patch, (tuple, list)) else patch) if patch is not None else 0
        super().__init__(cfg, pretrained.get("mean", (0.5,) * 3), pretrained.get("std", (0.5,) * 3), patch, identity)
        self.n_prefix = int(getattr(model, "num_prefix_tokens", 0))
        self.has_cls = bool(getattr(model, "cls_token", None) is not None)
        if cfg.keep_cls and not self.has_cls:
            raise ValueError(f"keep_cls=True but timm model {name!r} has no class token; set keep_cls: false")
        if patch and cfg.resolution % patch:
            raise ValueError(f"resolution {cfg.resolution} is not a multiple of {name!r}'s patch size {patch}; "
                             f"use e.g. {cfg.resolution // patch * patch or patch}")
        native = pretrained.get("input_size", (3, cfg.resolution, cfg.resolution))[-1]
        resized = hasattr(model, "set_input_size") and native != cfg.resolution
        if resized:
            model.set_input_size(img_size=(cfg.resolution, cfg.resolution))
        self.model = model.eval()
        self._probe()
        if resized and patch:
            log.info("encoder %s: position embeddings resampled (timm set_input_size) from a %dx%d to a %dx%d "
                     "patch grid (%d -> %d px)", cfg.name, native // patch, native // patch, *self._grid, native,
                     cfg.resolution)
        log.info("encoder %s: %s, %.1fM parameters, dtype %s, feature grid %dx%d", cfg.name, type(model).__name__,
                 sum(p.numel() for p in model.parameters()) / 1e6, next(model.parameters()).dtype, *self._grid)

    def _features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.cfg.feature_layer == "last":
            feats = self.model.forward_features(pixel_values)
            if feats.ndim == 4:
                return feats.flatten(2).transpose(1, 2)
            patches = feats[:, self.n_prefix:]
            return torch.cat([feats[:, :1], patches], dim=1) if self.cfg.keep_cls else patches
        out = self.model.forward_intermediates(pixel_values, indices=2, intermediates_only=True,
                                               **({"return_prefix_tokens": True} if self.cfg.keep_cls else {}))
        first = out[0]
        spatial, prefix = first if isinstance(first, tuple) else (first, None)
        patches = spatial.flatten(2).transpose(1, 2)
        return torch.cat([prefix[:, :1], patches], dim=1) if prefix is not None else patches

    def _probe(self) -> None:
        r = self.cfg.resolution
        with torch.no_grad():
            if self.cfg.feature_layer == "last":
                out = self.model.forward_features(torch.zeros(1, 3, r, r))
            else:
                out = self.model.forward_intermediates(torch.zeros(1, 3, r, r), indices=2, intermediates_only=True)[0]
        if out.ndim == 4:
            self._grid, self._dim = (int(out.shape[2]), int(out.shape[3])), int(out.shape[1])
        else:
            self._dim = int(out.shape[-1])
            self._grid = self._infer_grid(out.shape[1] - self.n_prefix)
