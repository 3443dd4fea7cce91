"""A measurable stand-in for "can this text still be read at resolution R?".

Criterion: the lowercase "e" is told apart from "o", "c" and "a" by its three horizontal strokes (top,
crossbar, bottom). We render "e" at a world font size, downscale the image to the encoder's resolution with
Pillow's antialiased bicubic filter (as encoder preprocessing does), and count the dark runs along the glyph's
central columns. Three runs: the strokes are resolved (legible); fewer: they have merged into a blob.
Measured with DejaVu Sans Bold on 192 px images: SMALL words (1/12 of the side, 16 px) keep 3 strokes at
160 px for every sub-pixel offset, at 12 of 16 offsets at 128 px and at none at 96 px; LARGE words (1/5) keep
them down to 64 px.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ablate.world.fonts import font

BACKGROUND, INK = 240, 20


def _dark_runs(column: np.ndarray, threshold: float) -> int:
    dark = column < threshold
    return int(dark[0]) + int(np.sum(dark[1:] & ~dark[:-1]))


def e_strokes(font_px: int, resolution: int, image_size: int, offset: tuple[int, int] = (0, 0)) -> int:
    """Number of horizontal strokes of an "e" of `font_px` on an `image_size` image, seen at `resolution`."""
    image = Image.new("L", (image_size, image_size), BACKGROUND)
    f = font(font_px)
    left, top, right, bottom = f.getbbox("e")
    x0, y0 = image_size // 3 + offset[0], image_size // 3 + offset[1]
    ImageDraw.Draw(image).text((x0 - left, y0 - top), "e", font=f, fill=INK)
    pixels = np.asarray(image.resize((resolution, resolution), Image.BICUBIC), dtype=float)
    s = resolution / image_size
    cx = round((x0 + (right - left) / 2) * s)
    rows = slice(int((y0 - 1) * s), int(np.ceil((y0 + bottom - top + 1) * s)) + 1)
    threshold = (BACKGROUND + INK) / 2
    return max(_dark_runs(pixels[rows, c], threshold) for c in (cx - 1, cx, cx + 1))


def legible_fraction(font_px: int, resolution: int, image_size: int) -> float:
    """Share of 16 sub-pixel placements at which the "e" keeps its three strokes."""
    hits = [e_strokes(font_px, resolution, image_size, (dx, dy)) >= 3 for dx in range(4) for dy in range(4)]
    return float(np.mean(hits))
