"""Captions of a scene: terse web-style alt-text and rich (VeCap-like synthetic) captions.

MM1 (McKinzie et al., 2024, Sec. 3.3) trains on noisy web alt-text and on VeCap synthetic captions that
describe an image densely; here alt-text states at most a fact or two (often only a vague phrase) and a
rich caption states every fact of the image, in shuffled order.
"""
from __future__ import annotations

import numpy as np

from ablate.world import vocab
from ablate.world.facts import Fact


def join_sentences(sentences: list[str]) -> str:
    return ". ".join(sentences) + "."


def rich_caption(rng: np.random.Generator, facts: list[Fact]) -> str:
    order = rng.permutation(len(facts))
    return join_sentences([facts[i].sentence for i in order])


def alt_text(rng: np.random.Generator, facts: list[Fact]) -> str:
    r = rng.random()
    if r < 0.45:
        return vocab.VAGUE_PHRASES[int(rng.integers(len(vocab.VAGUE_PHRASES)))]
    k = 1 if r < 0.9 else min(2, len(facts))
    chosen = rng.choice(len(facts), size=k, replace=False)
    return join_sentences([facts[int(i)].sentence for i in chosen])
