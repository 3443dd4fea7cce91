"""The one font of the world: DejaVu Sans Bold from matplotlib's wheel, else Pillow's built-in scalable font.

No font file is needed from the operating system. Fonts are cached per pixel size (loading is ~1 ms).
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont


def _dejavu_path() -> Path | None:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    return path if path.exists() else None


@lru_cache(maxsize=64)
def font(px: int) -> ImageFont.FreeTypeFont:
    """A bold sans-serif font of `px` pixels (em size)."""
    path = _dejavu_path()
    if path is not None:
        return ImageFont.truetype(str(path), px)
    return ImageFont.load_default(size=px)


def text_box(text: str, px: int) -> tuple[int, int]:
    """Width and height of the ink of `text` at `px` pixels."""
    x0, y0, x1, y1 = font(px).getbbox(text)
    return x1 - x0, y1 - y0

