"""Mixtures: proportions, endless sampling, determinism (the sampling itself is `datasets.interleave_datasets`)."""
from collections import Counter
from itertools import islice

import pytest
from datasets import Dataset

from ablate.data import FEATURES, mix, normalised


def _source(kind: str, n: int) -> Dataset:
    return Dataset.from_list([{"text": f"{kind} {i}", "images": []} for i in range(n)], features=FEATURES)


SOURCES = {"caption": _source("caption", 50), "interleaved": _source("interleaved", 30), "text": _source("text", 7)}


def test_proportions_follow_the_weights_over_many_samples():
    weights = {"caption": 0.45, "interleaved": 0.45, "text": 0.1}
    n = 4000  # far more than the 87 rows: every source is repeated many times
    kinds = Counter(r["text"].split()[0] for r in islice(mix(SOURCES, weights, seed=0), n))
    assert sum(kinds.values()) == n
    # binomial sd at n=4000 is <= 0.008; 0.03 is ~4 sd
    for kind, w in weights.items():
        assert kinds[kind] / n == pytest.approx(w, abs=0.03)


def test_weights_are_normalised_and_zero_weights_dropped():
    assert normalised({"caption": 9, "text": 1, "interleaved": 0}) == {"caption": 0.9, "text": 0.1}
    kinds = {r["text"].split()[0] for r in islice(mix(SOURCES, {"caption": 2, "interleaved": 0}, 0), 300)}
    assert kinds == {"caption"}
    with pytest.raises(ValueError, match="only"):
        mix(SOURCES, {"synthetic": 1}, 0)


def test_same_seed_same_stream_other_seed_other_stream():
    w = {"caption": 1, "text": 1}
    first = [r["text"] for r in islice(mix(SOURCES, w, seed=5), 200)]
    assert first == [r["text"] for r in islice(mix(SOURCES, w, seed=5), 200)]
    assert first != [r["text"] for r in islice(mix(SOURCES, w, seed=6), 200)]
    # each source is read in full before it repeats: the first 7 'text' rows are all different
    texts = [t for t in first if t.startswith("text")]
    assert len(set(texts[:7])) == 7
