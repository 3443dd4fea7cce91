"""Per-question scores and bootstrap confidence intervals.

- VQA accuracy (Antol et al., 2015; Goyal et al., 2017 for VQAv2): answers normalised with the EvalAI
  processor that lmms-eval ships (`EvalAIAnswerProcessor`: lower case, punctuation, number words -> digits,
  articles dropped, contractions); with 10 reference answers, `min(1, matches / 3)` averaged over the 10
  leave-one-out subsets of 9 (the official formula, as in lmms-eval's `tasks/textvqa/utils.py`); with fewer
  references, exact match of the normalised prediction against any reference.
- ANLS (Biten et al., 2019, ST-VQA): `lmms_eval.api.metrics.anls`, threshold 0.5.
- CIDEr-D (Vedantam et al., 2015) through `pycocoevalcap`, with a plain tokeniser instead of the Java PTB one.
- Bootstrap (Efron, 1979): percentile interval of the mean over resampled questions, fixed seed.

lmms-eval is imported inside the functions that need it, so this module imports without it.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

OFFICIAL_N_ANSWERS = 10


@functools.lru_cache(maxsize=1)
def _processor():
    # lazy: lmms-eval only when answers are scored
    from lmms_eval.tasks._task_utils.vqa_eval_metric import EvalAIAnswerProcessor

    return EvalAIAnswerProcessor()


def normalize_answer(text: str) -> str:
    """The standard VQA answer normalisation ("Two" -> "2", "a red" -> "red", "dog." -> "dog")."""
    return _processor()(str(text))


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """VQA accuracy of one prediction against its reference answers (0..1)."""
    if not answers:
        raise ValueError("vqa_accuracy needs at least one reference answer")
    pred = normalize_answer(prediction)
    refs = [normalize_answer(a) for a in answers]
    if len(refs) < OFFICIAL_N_ANSWERS:
        return float(pred in refs)
    accs = []
    for i in range(len(refs)):
        matches = sum(1 for j, ref in enumerate(refs) if j != i and ref == pred)
        accs.append(min(1.0, matches / 3.0))
    return float(np.mean(accs))


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals one normalised reference."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in answers))


def anls(prediction: str, answers: Sequence[str], threshold: float = 0.5) -> float:
    """Average normalised Levenshtein similarity of one prediction (lmms-eval's implementation)."""
    from lmms_eval.api.metrics import anls as _anls  # lazy: as above

    return float(_anls(list(answers), [prediction], thresh_hold=threshold)["anls"])


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def _tokenize(text: str) -> str:
    return " ".join(_TOKEN.findall(str(text).lower()))


def cider(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, np.ndarray]:
    """Corpus CIDEr-D and the per-caption values (document frequencies come from these references)."""
    from pycocoevalcap.cider.cider import Cider  # lazy: optional, only for the cider metric

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference sets")
    if not predictions:
        return 0.0, np.zeros(0)
    gts = {i: [_tokenize(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [_tokenize(p)] for i, p in enumerate(predictions)}
    score, per_item = Cider().compute_score(gts, res)
    return float(score), np.asarray(per_item, dtype=float)


SCORERS = {"vqa": vqa_accuracy, "exact": exact_match, "anls": anls}


def bootstrap_ci(scores: Sequence[float], n_resamples: int, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-question `scores`.

    Resamples questions with replacement `n_resamples` times with a fixed seed. With no resamples or fewer
    than two questions the interval collapses to the mean.
    """
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    mean = float(values.mean())
    if n_resamples <= 0 or values.size < 2:
        return mean, mean
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // values.size)  # bound memory: about 16 MB of indices at a time
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(min(low, mean)), float(max(high, mean))
