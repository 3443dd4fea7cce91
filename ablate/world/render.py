"""Draw a `Scene` into a square RGB image with Pillow."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from PIL import Image, ImageDraw

from ablate.world import vocab
from ablate.world.fonts import font
from ablate.world.scene import Scene, ShapeSpec

INK = (20, 20, 20)


def _texture(draw: ImageDraw.ImageDraw, scene: Scene) -> None:
    side = scene.image_size
    r, g, b = vocab.BACKGROUNDS[scene.background]
    faint = (r - 16, g - 16, b - 16)
    step = max(6, side // 24)
    if scene.texture == "lines":
        for k in range(-side, side, step):
            draw.line([(k, 0), (k + side, side)], fill=faint, width=1)
    elif scene.texture == "dots":
        for y in range(step // 2, side, step):
            for x in range(step // 2, side, step):
                draw.point((x, y), fill=faint)


def _shape(draw: ImageDraw.ImageDraw, s: ShapeSpec) -> None:
    x0, y0, x1, y1 = s.box
    fill = vocab.COLOURS[s.colour]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if s.shape == "circle":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=fill)
    elif s.shape == "square":
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=fill)
    elif s.shape == "triangle":
        draw.polygon([(cx, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=fill)
    elif s.shape == "diamond":
        draw.polygon([(cx, y0), (x1 - 1, cy), (cx, y1 - 1), (x0, cy)], fill=fill)
    elif s.shape == "cross":
        t = (x1 - x0) / 6
        draw.rectangle([cx - t, y0, cx + t, y1 - 1], fill=fill)
        draw.rectangle([x0, cy - t, x1 - 1, cy + t], fill=fill)
    else:  # pragma: no cover - vocab and renderer are kept in step by tests
        raise ValueError(f"no renderer for shape {s.shape!r}; shapes: {vocab.SHAPES}")


def render(scene: Scene) -> Image.Image:
    side = scene.image_size
    image = Image.new("RGB", (side, side), vocab.BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    _texture(draw, scene)
    for s in scene.shapes:
        _shape(draw, s)
    for w in scene.words:
        f = font(w.font_px)
        left, top, _, _ = f.getbbox(w.text)
        draw.text((w.box[0] - left, w.box[1] - top), w.text, font=f, fill=INK)
    return image


def _save_all(jobs: list[tuple[Scene, str]]) -> None:
    for scene, path in jobs:
        render(scene).save(path, format="PNG", compress_level=1)


def save_images(jobs: list[tuple[Scene, Path]], processes: int | None = None) -> None:
    """Render and write every `(scene, path)` as PNG, in `processes` processes (default: the cores this process may
    use, at most 8). Drawing is deterministic, so the files are the same whatever the count. The workers are
    spawned: a forked child would inherit the parent's torch thread pools."""
    jobs = [(scene, str(path)) for scene, path in jobs]
    processes = processes or min(8, len(os.sched_getaffinity(0)))
    if processes < 2 or len(jobs) < 400:   # a pool costs about a second to start
        _save_all(jobs)
        return
    chunks = [jobs[i::processes * 4] for i in range(processes * 4)]
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        list(pool.map(_save_all, chunks))
