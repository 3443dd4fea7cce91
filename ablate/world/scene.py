"""Scene specifications: what an image of the world holds, sampled from a numpy RNG.

A scene is 1-4 shapes in distinct cells of a 3x3 layout plus one or more rendered words, on a plain or
lightly textured background. The spec is pure data (it round-trips through JSON), so question records
can be checked against what was drawn.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ablate.world import vocab
from ablate.world.fonts import text_box

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


@dataclass(frozen=True)
class ShapeSpec:
    shape: str
    colour: str
    size: str  # "big" | "small"
    position: str  # a name from vocab.POSITIONS
    box: Box  # the shape's bounding box in pixels


@dataclass(frozen=True)
class WordSpec:
    text: str
    size: str  # "large" | "small"
    font_px: int
    box: Box  # the ink's bounding box in pixels


@dataclass(frozen=True)
class Scene:
    image_size: int
    background: str  # a name from vocab.BACKGROUNDS
    texture: str  # "plain" | "lines" | "dots"
    shapes: tuple[ShapeSpec, ...]
    words: tuple[WordSpec, ...]  # sorted top to bottom

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        return cls(
            image_size=d["image_size"],
            background=d["background"],
            texture=d["texture"],
            shapes=tuple(ShapeSpec(**{**s, "box": tuple(s["box"])}) for s in d["shapes"]),
            words=tuple(WordSpec(**{**w, "box": tuple(w["box"])}) for w in d["words"]),
        )


def _overlap(a: Box, b: Box, margin: int = 2) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def _cell_reserve(cell: int, side: int) -> Box:
    """The part of a layout cell a shape may cover (largest shape plus its jitter)."""
    c = side / 3
    row, col = divmod(cell, 3)
    cx, cy = (col + 0.5) * c, (row + 0.5) * c
    half = vocab.SIZE_FRACTION["big"] * c / 2 + 0.12 * c
    return (int(cx - half), int(cy - half), int(cx + half) + 1, int(cy + half) + 1)


def _place_words(rng: np.random.Generator, side: int, n_words: int, vocabulary: int) -> list[WordSpec]:
    drawn = vocab.words(vocabulary)
    texts = rng.choice(len(drawn), size=n_words, replace=False)
    placed: list[WordSpec] = []
    for t in texts:
        text = drawn[int(t)]
        size = "large" if rng.random() < 0.5 else "small"
        font_px = max(6, round(side * vocab.WORD_SIZE_FRACTION[size]))
        w, h = text_box(text, font_px)
        margin = max(2, side // 48)
        for _ in range(200):
            x = int(rng.integers(margin, max(margin + 1, side - w - margin)))
            y = int(rng.integers(margin, max(margin + 1, side - h - margin)))
            box = (x, y, x + w, y + h)
            if not any(_overlap(box, p.box, margin=4) for p in placed):
                break
        placed.append(WordSpec(text=text, size=size, font_px=font_px, box=box))
    return sorted(placed, key=lambda wd: (wd.box[1], wd.box[0]))


def sample_scene(rng: np.random.Generator, side: int, words_per_image: int = 1,
                 vocabulary: int = len(vocab.WORDS)) -> Scene:
    """Sample a scene whose shapes never touch its words, so every fact stays visible.

    Words are drawn from `vocab.words(vocabulary)`."""
    n_shapes = int(rng.integers(1, 5))
    best: tuple[list[WordSpec], list[int]] = ([], [])
    for _ in range(200):
        words = _place_words(rng, side, words_per_image, vocabulary)
        free = [c for c in range(9) if not any(_overlap(_cell_reserve(c, side), w.box) for w in words)]
        if len(free) > len(best[1]) or not best[0]:
            best = (words, free)
        if len(free) >= n_shapes:
            break
    words, free = best
    if not free:
        raise RuntimeError(f"could not lay out a shape beside {words_per_image} word(s) at {side}px")
    n_shapes = min(n_shapes, len(free))  # only on crowded settings (three words on a tiny image)
    cells = sorted(int(c) for c in rng.choice(free, size=n_shapes, replace=False))
    c = side / 3
    shapes = []
    for cell in cells:
        shape = vocab.SHAPES[int(rng.integers(len(vocab.SHAPES)))]
        colour = list(vocab.COLOURS)[int(rng.integers(len(vocab.COLOURS)))]
        size = vocab.SIZES[int(rng.integers(len(vocab.SIZES)))]
        s = vocab.SIZE_FRACTION[size] * c
        row, col = divmod(cell, 3)
        jitter = 0.12 * c if size == "big" else 0.2 * c
        cx = (col + 0.5) * c + rng.uniform(-jitter, jitter) * (0.5 if size == "big" else 1.0)
        cy = (row + 0.5) * c + rng.uniform(-jitter, jitter) * (0.5 if size == "big" else 1.0)
        box = (round(cx - s / 2), round(cy - s / 2), round(cx + s / 2), round(cy + s / 2))
        shapes.append(ShapeSpec(shape=shape, colour=colour, size=size, position=vocab.POSITIONS[cell], box=box))
    background = list(vocab.BACKGROUNDS)[int(rng.integers(len(vocab.BACKGROUNDS)))]
    texture = ("plain", "lines", "dots")[int(rng.integers(3))]
    return Scene(image_size=side, background=background, texture=texture, shapes=tuple(shapes), words=tuple(words))
