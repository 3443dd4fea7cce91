"""Interleaved k-shot contexts: (image, prompt, answer) x k, then (image, prompt).

Demonstrations are drawn per query from a pool (the `demo` split) with a seed that depends only on the
task's seed and the query's key, never on the model: every cell of a grid sees the same demonstrations for
the same question (as in MM1's few-shot evaluation, McKinzie et al., 2024, section 3.1, and Flamingo,
Alayrac et al., 2022). A demonstration never shows the query's image.
"""
from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Hashable, Sequence


def stable_rng(seed: int, key: str) -> random.Random:
    """A random generator determined by `(seed, key)` alone (no process hash randomisation)."""
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class DemoPool:
    """The few-shot pool: its records and the image key of each."""

    def __init__(self, records: Sequence[dict], image_keys: Sequence[Hashable]):
        if len(records) != len(image_keys):
            raise ValueError("one image key per pool record")
        self.records = list(records)
        self.image_keys = list(image_keys)
        self._per_image = Counter(self.image_keys)

    def __len__(self) -> int:
        return len(self.records)

    def draw(self, k: int, seed: int, query_key: str, query_image: Hashable) -> list[int]:
        """Indices of `k` distinct pool records whose image is not `query_image`, in demonstration order."""
        if k <= 0:
            return []
        same = self._per_image.get(query_image, 0)
        available = len(self.records) - same
        if available < k:
            raise ValueError(
                f"few-shot pool has {available} records not showing the query's image, {k} needed: "
                "give a larger demo split or fewer shots"
            )
        rng = stable_rng(seed, query_key)
        order = rng.sample(range(len(self.records)), min(len(self.records), k + same))
        chosen = [i for i in order if self.image_keys[i] != query_image][:k]
        return chosen
