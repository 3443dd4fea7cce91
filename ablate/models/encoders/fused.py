"""`FusedEncoder`: several image encoders as one (`encoder.name: "zoo:clip-read-s+zoo:clip-s"`, ablate.config.fusion).

Each member preprocesses the image at its own resolution with its own normalisation; its patch grid is
average-pooled (adaptive, area-weighted) to the smallest member grid, and the features are concatenated per patch
(Prismatic VLMs' "dinosiglip"), so the connector sees one `(n, h*w, sum of dims)` block. The preprocessed crops
of all members travel as one tensor, `(n, sum of 3 * R_i * R_i)` (each member's crops flattened, side by side), so
prefetching, the feature cache and the device moves treat a fusion as any encoder.
"""
from __future__ import annotations

import hashlib
import json

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ablate.config.fusion import fused_grid
from ablate.config.schema import EncoderConfig
from ablate.models.encoders.base import VisionEncoder


class FusedEncoder(VisionEncoder):
    def __init__(self, cfg: EncoderConfig, members: list[VisionEncoder]):
        super().__init__(cfg, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), min(m.patch_size for m in members),
                         "+".join(m.identity for m in members))
        self.members = nn.ModuleList(members)
        self._grid = fused_grid([m.grid for m in members])
        self._dim = sum(m.dim for m in members)
        self._sizes = [3 * m.cfg.resolution ** 2 for m in members]

    def preprocess_with_layout(self, images: list[Image.Image]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        parts = [m.preprocess_with_layout(images) for m in self.members]
        layouts = parts[0][1]
        return torch.cat([pixels.flatten(1) for pixels, _ in parts], dim=1), layouts

    def _features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        h, w = self._grid
        feats = []
        for member, pixels in zip(self.members, torch.split(pixel_values, self._sizes, dim=1)):
            r = member.cfg.resolution
            out = member(pixels.reshape(-1, 3, r, r))                              # (n, mh*mw, d)
            if member.grid != (h, w):
                mh, mw = member.grid
                grid = out.transpose(1, 2).reshape(out.shape[0], out.shape[2], mh, mw)
                out = F.adaptive_avg_pool2d(grid, (h, w)).flatten(2).transpose(1, 2)
            feats.append(out)
        return torch.cat(feats, dim=-1)

    def feature_key(self) -> str:
        """Its members' keys, in order, and the grid they are pooled to."""
        what = {"fusion": [m.feature_key() for m in self.members], "grid": list(self._grid)}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
