"""Interleaved image-text documents and the text-only corpus of the world.

Interleaved documents (MM1 Sec. 3.3: interleaved data drives few-shot and text-only performance) put 2-4
images in a row, each followed by some of its facts, then relations between the pictures ("the first picture
has more shapes than the second"). Text-only documents use the same sentence forms about imaginary scenes,
relations between them, and question-answer text.
"""
from __future__ import annotations

import numpy as np

from ablate.world import vocab
from ablate.world.captions import join_sentences
from ablate.world.facts import Fact, scene_facts
from ablate.world.scene import Scene

IMAGE = "<image>"


def relation(rng: np.random.Generator, a: Scene, b: Scene, ia: int, ib: int) -> str:
    """One true sentence comparing picture `ia` (scene a) with picture `ib` (scene b), 0-based indices."""
    first, second = vocab.ORDINALS[ia], vocab.ORDINALS[ib]
    kind = int(rng.integers(3))
    if kind == 0:
        na, nb = len(a.shapes), len(b.shapes)
        how = "more shapes than" if na > nb else "fewer shapes than" if na < nb else "as many shapes as"
        return f"the {first} picture has {how} the {second}"
    if kind == 1:
        same = a.words[0].text == b.words[0].text
        return f"the {first} and the {second} picture show {'the same word' if same else 'different words'}"
    shared = sorted({s.colour for s in a.shapes} & {s.colour for s in b.shapes})
    if shared:
        colour = shared[int(rng.integers(len(shared)))]
        return f"the {first} and the {second} picture both have a {colour} shape"
    return f"the {first} and the {second} picture share no colour"


def _some_facts(rng: np.random.Generator, facts: list[Fact], low: int, high: int) -> list[str]:
    k = min(len(facts), int(rng.integers(low, high + 1)))
    return [facts[int(i)].sentence for i in rng.choice(len(facts), size=k, replace=False)]


def _relations(rng: np.random.Generator, scenes: list[Scene]) -> list[str]:
    out = []
    for _ in range(int(rng.integers(1, 3))):
        ia, ib = sorted(int(i) for i in rng.choice(len(scenes), size=2, replace=False))
        out.append(relation(rng, scenes[ia], scenes[ib], ia, ib))
    return out


def interleaved_doc(rng: np.random.Generator, scenes: list[Scene]) -> str:
    """Text with one `<image>` marker per scene, in order, each followed by 1-3 of its facts."""
    parts = [f"{IMAGE} " + join_sentences(_some_facts(rng, scene_facts(s), 1, 3)) for s in scenes]
    parts.append(join_sentences(_relations(rng, scenes)))
    return " ".join(parts)


def _qa(rng: np.random.Generator, facts: list[Fact]) -> str:
    k = min(len(facts), int(rng.integers(1, 4)))
    chosen = [facts[int(i)] for i in rng.choice(len(facts), size=k, replace=False)]
    return " ".join(f"question: {f.question} answer: {f.answers[0]}." for f in chosen)


def text_doc(rng: np.random.Generator, scenes: list[Scene]) -> str:
    """A text-only document about 1-3 imaginary scenes (no image is drawn)."""
    if len(scenes) == 1:
        facts = scene_facts(scenes[0])
        description = "a picture. " + join_sentences(_some_facts(rng, facts, 2, 6))
        return description if rng.random() < 0.5 else f"{description} {_qa(rng, facts)}"
    parts = [
        f"the {vocab.ORDINALS[i]} picture: " + join_sentences(_some_facts(rng, scene_facts(s), 1, 3))
        for i, s in enumerate(scenes)
    ]
    parts.append(join_sentences(_relations(rng, scenes)))
    return " ".join(parts)
