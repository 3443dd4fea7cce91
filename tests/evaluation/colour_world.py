"""A tiny world on disk (solid-colour images, question files) and a deterministic `Generator` test double.

A module of its own, not conftest: `from colour_world import` finds whichever conftest was imported first when
several test folders are collected together."""
from __future__ import annotations

import json
import os
from pathlib import Path

from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

COLOURS = {
    "red": (220, 20, 20),
    "green": (20, 200, 20),
    "blue": (20, 20, 220),
    "yellow": (230, 220, 20),
    "white": (250, 250, 250),
    "black": (5, 5, 5),
}
NUMBERS = {"red": "one", "green": "two", "blue": "three", "yellow": "four", "white": "five", "black": "six"}


def nearest_colour(image) -> str:
    rgb = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
    return min(COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(COLOURS[c], rgb)))


class ColourGenerator:
    """Answers from the query image's colour (the last image of the context); records every context.

    Colour questions get "A <colour>.", questions whose prompt mentions a word get "<Number word>.", so
    normalisation is exercised ("A red" -> "red", "Two" -> "2").

    `wrong` colours are answered wrongly, so the expected score of a test set is known exactly.
    """

    def __init__(self, wrong=(), answer_style="word"):
        self.wrong = set(wrong)
        self.answer_style = answer_style
        self.contexts = []

    def _answer(self, context) -> str:
        images = [s for s in context if not isinstance(s, str)]
        colour = nearest_colour(images[-1])
        if colour in self.wrong:
            return "purple\nmore text"
        if self.answer_style == "number" or (isinstance(context[-1], str) and "the word is" in context[-1]):
            return NUMBERS[colour].capitalize() + ". and so on"
        return f"A {colour}.\nthe end"

    def generate(self, contexts, max_new_tokens):
        self.contexts.extend(contexts)
        return [self._answer(c) for c in contexts]

    def loglikelihood(self, contexts, continuations):
        self.contexts.extend(contexts)
        return [0.0 if self._answer(c).split(".")[0].lower().endswith(cont.strip().lower()) else -5.0
                for c, cont in zip(contexts, continuations)]


def _write_jsonl(path: Path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_world(root: Path, n_test_per_colour=2, n_demo_per_colour=2) -> Path:
    """`root/questions/{vqa,textvqa,caption}_{test,demo}.jsonl` over solid-colour images of 8 px."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    for split, per in (("test", n_test_per_colour), ("demo", n_demo_per_colour)):
        vqa, text, cap = [], [], []
        for c, rgb in COLOURS.items():
            for j in range(per):
                path = images / f"{split}_{c}_{j}.png"
                image = Image.new("RGB", (8, 8), rgb)
                image.putpixel((0, 0), (split == "demo", j, list(COLOURS).index(c)))  # every image unique
                image.save(path)
                qid = f"{split}-{c}-{j}"
                kind = "colour-bright" if c in ("yellow", "white") else "colour-plain"
                vqa.append({"id": qid, "image": str(path), "question": "What colour is the image?",
                            "prompt": "the colour is", "answers": [c], "type": kind})
                text.append({"id": qid, "image": str(path), "question": "What number is written?",
                             "prompt": "the word is", "answers": [NUMBERS[c]] * 10,
                             "type": "text-small" if j == 0 else "text-large"})
                cap.append({"id": qid, "image": str(path), "question": "", "prompt": "a photo of",
                            "answers": [f"a {c} square", f"a plain {c} image"], "type": "caption"})
        _write_jsonl(root / "questions" / f"vqa_{split}.jsonl", vqa)
        _write_jsonl(root / "questions" / f"textvqa_{split}.jsonl", text)
        _write_jsonl(root / "questions" / f"caption_{split}.jsonl", cap)
    return root
