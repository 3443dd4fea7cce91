"""How an image of any size becomes square encoder inputs: `resize`, `pad`, or `slice`.

`slice` is the adaptive slicing of LLaVA-UHD (Xu et al., 2024, "LLaVA-UHD: an LMM Perceiving Any Aspect Ratio and
High-Resolution Images", section 3.1): an image of W x H against an encoder made for Wv x Hv wants
N = ceil(W*H / (Wv*Hv)) slices; among partitions m columns x n rows with m*n in {N-1, N, N+1} it keeps the one
maximising S(m, n) = -|log(W*n / (H*m)) - log(Wv/Hv)|, i.e. the slices whose aspect ratio is closest to the
encoder's. A down-scaled overview of the whole image goes with the slices.

Pure functions on PIL images; the encoder turns the results into normalised tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

HANDLINGS = ("resize", "pad", "slice")


def resize(image: Image.Image, size: int) -> Image.Image:
    """Square `size` x `size`, aspect ratio not kept (bicubic)."""
    return image.convert("RGB").resize((size, size), Image.BICUBIC)


def pad(image: Image.Image, size: int, fill: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Keep the aspect ratio: scale the longer side to `size`, centre on a `fill` square (LLaVA-1.5 style)."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / max(w, h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(image.resize((new_w, new_h), Image.BICUBIC), ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


def slice_count(width: int, height: int, vit_width: int, vit_height: int, max_slices: int) -> int:
    """N = ceil(W*H / (Wv*Hv)), capped by `max_slices`."""
    return min(max_slices, math.ceil(width * height / (vit_width * vit_height)))


def slice_score(width: int, height: int, cols: int, rows: int, vit_width: int, vit_height: int) -> float:
    """S(m, n) = -|log(W*n / (H*m)) - log(Wv/Hv)| for m = cols, n = rows."""
    return -abs(math.log(width * rows / (height * cols)) - math.log(vit_width / vit_height))


def choose_partition(width: int, height: int, vit_width: int, vit_height: int, max_slices: int) -> tuple[int, int]:
    """(rows, cols) of the best partition, or (0, 0) when the image needs no slicing (N <= 1).

    Candidates: every m x n with m*n in {N-1, N, N+1}, 1 < m*n <= max_slices. Ties go to fewer slices, then to
    fewer rows.
    """
    n = slice_count(width, height, vit_width, vit_height, max_slices)
    if n <= 1:
        return 0, 0
    best: tuple[float, int, int, int, int] | None = None  # (-score, count, rows, cols) ordering
    for count in (n - 1, n, n + 1):
        if count <= 1 or count > max_slices:
            continue
        for cols in range(1, count + 1):
            if count % cols:
                continue
            rows = count // cols
            key = (-slice_score(width, height, cols, rows, vit_width, vit_height), count, rows, cols)
            if best is None or key < best:
                best = key
    assert best is not None
    return best[2], best[3]


@dataclass(frozen=True)
class Sliced:
    """An image cut for the encoder: the overview first, then `rows` x `cols` slices in row-major order."""

    overview: Image.Image
    slices: list[Image.Image]
    rows: int
    cols: int

    @property
    def crops(self) -> list[Image.Image]:
        return [self.overview, *self.slices]


def slice_image(image: Image.Image, size: int, max_slices: int) -> Sliced:
    """LLaVA-UHD slicing for a square `size` encoder; each slice and the overview are resized to `size`."""
    image = image.convert("RGB")
    w, h = image.size
    rows, cols = choose_partition(w, h, size, size, max_slices)
    slices = []
    for r in range(rows):
        for c in range(cols):
            box = (round(c * w / cols), round(r * h / rows), round((c + 1) * w / cols), round((r + 1) * h / rows))
            slices.append(resize(image.crop(box), size))
    return Sliced(overview=resize(image, size), slices=slices, rows=rows, cols=cols)


def handle(image: Image.Image, size: int, how: str, max_slices: int = 4) -> tuple[list[Image.Image], tuple[int, int]]:
    """Square crops for one image and its slice layout (rows, cols); (0, 0) unless `how == "slice"`."""
    if how == "resize":
        return [resize(image, size)], (0, 0)
    if how == "pad":
        return [pad(image, size)], (0, 0)
    if how == "slice":
        sliced = slice_image(image, size, max_slices)
        return sliced.crops, (sliced.rows, sliced.cols)
    raise ValueError(f"unknown image handling {how!r}; expected one of {', '.join(HANDLINGS)}")
