"""`VisionEncoder`: the one interface every image encoder family is wrapped into.

images --preprocess--> (n, 3, R, R) normalised with the model's own mean/std --forward--> (n, h*w, dim) patch
features from the chosen layer, class/register tokens dropped unless `keep_cls` (then the class token comes first).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
from PIL import Image
from torch import nn

from ablate.config.schema import EncoderConfig
from ablate.images import handle

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


class VisionEncoder(nn.Module):
    """Base class: subclasses set `self.model` and implement `_features(pixel_values) -> (n, tokens, dim)`."""

    def __init__(self, cfg: EncoderConfig, mean, std, patch_size: int, identity: str):
        super().__init__()
        self.cfg = cfg
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self._patch_size = int(patch_size)
        self.identity = identity
        self._grid: tuple[int, int] | None = None
        self._dim: int | None = None

    # --- images -> pixels -------------------------------------------------------------------------------------
    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        array = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (array - mean) / std

    def preprocess_with_layout(self, images: list[Image.Image]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Crops of every image in order (with `slice`: overview, then rows x cols slices) and each layout."""
        crops, layouts = [], []
        for image in images:
            squares, layout = handle(image, self.cfg.resolution, self.cfg.image_handling, self.cfg.max_slices)
            crops.extend(self.to_tensor(s) for s in squares)
            layouts.append(layout)
        if not crops:
            r = self.cfg.resolution
            return torch.empty(0, 3, r, r), layouts
        return torch.stack(crops), layouts

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """`(n, 3, R, R)`; n = len(images) for resize/pad, sum of 1 + rows*cols per image for slice."""
        return self.preprocess_with_layout(images)[0]

    # --- pixels -> features -----------------------------------------------------------------------------------
    def _features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._features(pixel_values)

    def _probe(self) -> None:
        r = self.cfg.resolution
        param = next(self.parameters(), None)
        dtype = param.dtype if param is not None else torch.float32
        device = param.device if param is not None else "cpu"
        with torch.no_grad():
            out = self._features(torch.zeros(1, 3, r, r, dtype=dtype, device=device))
        self._dim = int(out.shape[-1])
        self._grid = self._grid or self._infer_grid(out.shape[1] - int(self.cfg.keep_cls))

    def _infer_grid(self, n_patches: int) -> tuple[int, int]:
        side = round(n_patches ** 0.5)
        if side * side != n_patches:
            raise ValueError(f"cannot infer a square grid from {n_patches} patches")
        return side, side

    @property
    def grid(self) -> tuple[int, int]:
        if self._grid is None:
            self._probe()
        return self._grid

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._probe()
        return self._dim

    @property
    def patch_size(self) -> int:
        return self._patch_size

    @property
    def n_tokens(self) -> int:
        """Feature rows per crop: h*w (+1 with keep_cls)."""
        h, w = self.grid
        return h * w + int(self.cfg.keep_cls)

    def feature_key(self) -> str:
        """Hash of everything that determines the features of an image (for a feature cache)."""
        c = self.cfg
        what = {
            "spec": c.name, "weights": self.identity, "resolution": c.resolution, "layer": c.feature_layer,
            "keep_cls": c.keep_cls, "handling": c.image_handling,
            "max_slices": c.max_slices if c.image_handling == "slice" else None,
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
