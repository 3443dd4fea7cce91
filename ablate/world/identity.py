"""What identifies a built world: its settings, the generator version and the closed vocabulary.

Kept apart from `build.py` (which imports the tokenizer stack) so that a grid's cell ids are computed without it.
"""
from __future__ import annotations

import hashlib
import json

from ablate.config.schema import WorldConfig
from ablate.world.vocab import COLOURS, POSITIONS, SHAPES
from ablate.world.vocab import words as vocab_words

GENERATOR_VERSION = 4  # bump when the generator changes what it writes: old caches are left alone (4: BPE tokens)


def world_hash(cfg: WorldConfig) -> str:
    """Settings + generator version + the closed vocabulary: a change to any of them builds a new world."""
    words = {"shapes": SHAPES, "colours": list(COLOURS), "positions": POSITIONS, "words": vocab_words(cfg.n_words)}
    blob = json.dumps({"version": GENERATOR_VERSION, "vocabulary": words, **cfg.model_dump(mode="json")},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
