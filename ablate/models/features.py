"""Image features for the connector: computed by the encoder, or reused while the encoder is frozen.

A frozen encoder gives the same features for every cell that shares encoder, resolution, image handling and
images, so a worker keeps one `FeatureCache` for the whole grid (DESIGN: "compute them once and reuse them").
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
from PIL import Image


class FeatureCache:
    """Features per (encoder feature key, image path), held in memory up to `max_bytes`, oldest dropped first."""

    def __init__(self, max_bytes: int = 6 * 2**30):
        self.max_bytes = max_bytes
        self._store: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> torch.Tensor | None:
        value = self._store.get(key)
        if value is not None:
            self._store.move_to_end(key)
        return value

    def put(self, key: tuple[str, str], value: torch.Tensor) -> None:
        if key in self._store:
            return
        self._store[key] = value
        self._bytes += value.numel() * value.element_size()
        while self._bytes > self.max_bytes and self._store:
            _, dropped = self._store.popitem(last=False)
            self._bytes -= dropped.numel() * dropped.element_size()

    def __len__(self) -> int:
        return len(self._store)


def load_images(paths: list[str]) -> list[Image.Image]:
    images = []
    for path in paths:
        with Image.open(path) as img:
            images.append(img.convert("RGB"))
    return images


def image_key(image: str | Image.Image) -> str:
    """A path as it is; an image in memory (evaluation's questions) by a digest of its pixels."""
    if isinstance(image, str):
        return image
    return "pixels:" + hashlib.sha1(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()


class ImageFeatures:
    """Callable `images -> (n_crops, n_patches, dim)` (paths or PIL images): the crops of every image in order (one
    per image unless the encoder slices); uses the cache only while the encoder does not train."""

    def __init__(self, encoder: torch.nn.Module, cache: FeatureCache | None, frozen: bool):
        self.encoder, self.cache, self.frozen = encoder, cache, frozen
        self.key = encoder.feature_key() if cache is not None and frozen else None

    def _compute(self, images: list, device) -> list[torch.Tensor]:
        paths = [i for i in images if isinstance(i, str)]
        loaded = iter(load_images(paths))
        pixels, layouts = self.encoder.preprocess_with_layout(
            [next(loaded) if isinstance(i, str) else i.convert("RGB") for i in images])
        feats = self.encoder(pixels.to(device))
        counts = [1 + rows * cols for rows, cols in layouts]
        return list(torch.split(feats, counts))

    def __call__(self, images: list, device: torch.device | str = "cpu") -> torch.Tensor:
        if not images:
            return torch.empty(0)
        if self.key is None:
            with torch.set_grad_enabled(not self.frozen and torch.is_grad_enabled()):
                return torch.cat(self._compute(images, device))
        keys = [image_key(i) for i in images]
        missing = {k: i for k, i in zip(keys, images) if self.cache.get((self.key, k)) is None}
        self.cache.hits += len(images) - len(missing)
        self.cache.misses += len(missing)
        todo = list(missing.items())
        for start in range(0, len(todo), 64):
            chunk = todo[start:start + 64]
            with torch.no_grad():
                feats = self._compute([i for _, i in chunk], device)
            for (key, _), feat in zip(chunk, feats):
                self.cache.put((self.key, key), feat.detach().to("cpu"))
        return torch.cat([self.cache.get((self.key, k)) for k in keys]).to(device)
