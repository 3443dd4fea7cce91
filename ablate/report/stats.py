"""Means, spreads, intervals and noise for table rows and figure points.

Two independent sources of noise are combined: seed-to-seed spread of replicate trainings (standard error
sd/sqrt(n)) and the evaluation's own bootstrap interval over questions (a 95% interval -> se = width / 3.92).
A difference is "inside the noise" when |a - b| < 1.96 * sqrt(se_a^2 + se_b^2), the usual two-sided 95% test
for independent estimates (Welch's z approximation).

One interval everywhere (`INTERVAL`): mean ± 1.96 se with that combined se, for a single run, replicates and
marginals alike, in every table and as every figure's error bar. A single run's interval is therefore the normal
interval of its bootstrap standard error, not the bootstrap's own (possibly asymmetric) percentiles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959964
INTERVAL = ("95% interval: mean ± 1.96 standard errors, the standard error combining the seed spread (sd / √n) "
            "and the evaluation's bootstrap interval over questions (its width / 3.92)")


@dataclass(frozen=True)
class Stat:
    """One number of a table with its uncertainty. `sd` is the seed standard deviation (None without
    replicates); `se` the standard error of `mean` from every known noise source (None: noise unknown);
    `ci` the 95% interval of the mean, mean ± 1.96 se (None when se is unknown)."""

    mean: float
    n: int
    sd: float | None = None
    se: float | None = None
    ci: tuple[float, float] | None = None


def _se_from_ci(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return (high - low) / (2 * Z95)


def of_runs(values, ci_low=None, ci_high=None) -> Stat | None:
    """Aggregate replicate runs of one setting. NaN scores are dropped; None if nothing is left."""
    x = np.asarray(values, dtype=float)
    keep = ~np.isnan(x)
    if not keep.any():
        return None
    x = x[keep]
    n = len(x)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else None
    se_seed = sd / math.sqrt(n) if sd is not None else None
    se_ci = None
    if ci_low is not None and ci_high is not None:
        lo, hi = np.asarray(ci_low, float)[keep], np.asarray(ci_high, float)[keep]
        if not (np.isnan(lo).any() or np.isnan(hi).any()):
            se_ci = float(math.sqrt(np.sum(_se_from_ci(lo, hi) ** 2)) / n)
    parts = [s for s in (se_seed, se_ci) if s is not None]
    se = math.sqrt(sum(s * s for s in parts)) if parts else None
    return Stat(mean, n, sd, se, _interval(mean, se))


def _interval(mean: float, se: float | None) -> tuple[float, float] | None:
    return (mean - Z95 * se, mean + Z95 * se) if se is not None else None


def of_cells(stats: list[Stat]) -> Stat | None:
    """Equal-weight mean over settings (a marginal). sd: pooled seed sd; se: the mean of the cells' standard
    errors, known for all. The cells answer the same questions, so their errors are not independent: the mean of
    the se's is their bound for fully correlated cells (the sqrt(k) division of independent cells would be too
    narrow). With every question's score logged, `paired.stat` replaces it by the paired bootstrap."""
    stats = [s for s in stats if s is not None]
    if not stats:
        return None
    mean = float(np.mean([s.mean for s in stats]))
    sds = [s.sd for s in stats if s.sd is not None]
    sd = float(math.sqrt(np.mean(np.square(sds)))) if sds else None
    se = None
    if all(s.se is not None for s in stats):
        se = float(np.mean([s.se for s in stats]))
    return Stat(mean, sum(s.n for s in stats), sd, se, _interval(mean, se))


def within_noise(a: Stat, b: Stat) -> bool:
    """True when a and b cannot be told apart at 95% (False when noise is unknown for either)."""
    if a.se is None or b.se is None:
        return False
    spread = math.sqrt(a.se**2 + b.se**2)
    return abs(a.mean - b.mean) < Z95 * spread if spread > 0 else False


BOOTSTRAP = 1000   # resamples of the paired bootstrap over questions
BOOTSTRAP_SEED = 0
PAIRED = ("95% interval: mean ± 1.96 standard errors, the standard error combining a paired bootstrap over the "
          "questions (the same resampled questions for every cell compared, so that shared questions are not "
          "counted as independent) and the seed spread (sd / √n of the same quantity computed within each seed)")


def paired(terms: list[tuple[float, list[np.ndarray]]], resamples: int = BOOTSTRAP,
           seed: int = BOOTSTRAP_SEED) -> Stat | None:
    """A weighted sum of mean scores that share their questions, e.g. a difference of two cells (weights +1, -1)
    or a mean over k cells (weights 1/k). Each term is (weight, one per-question score array per seed replicate),
    every array over the same questions in the same order.

    Question noise: a bootstrap over questions that resamples the same question indices for every term; the
    statistic is linear, so it is the bootstrap of the mean of d_q = sum_t w_t x̄_t,q (x̄: the seeds' mean).
    Seed noise: where every term has the same number r >= 2 of replicates, the statistic computed within each
    replicate j (d_j) and sd(d_j) / √r. The two are combined as sqrt(se_q² + se_seed²). None without questions."""
    if not terms or any(not arrays for _, arrays in terms):
        return None
    n = len(terms[0][1][0])
    if n == 0 or any(len(a) != n for _, arrays in terms for a in arrays):
        return None
    d = sum(w * np.mean(np.vstack(arrays), axis=0) for w, arrays in terms)
    mean = float(np.mean(d))
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    se_q = float(np.std(d[idx].mean(axis=1), ddof=1)) if resamples > 1 and n > 1 else 0.0
    reps = {len(arrays) for _, arrays in terms}
    se_seed, sd = 0.0, None
    if len(reps) == 1 and (r := reps.pop()) > 1:
        per_seed = [sum(w * float(np.mean(arrays[j])) for w, arrays in terms) for j in range(r)]
        sd = float(np.std(per_seed, ddof=1))
        se_seed = sd / math.sqrt(r)
    se = math.sqrt(se_q**2 + se_seed**2)
    n_runs = sum(len(arrays) for _, arrays in terms)
    return Stat(mean, n_runs, sd, se, _interval(mean, se))
