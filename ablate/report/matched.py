"""Matched comparisons: an axis's values compared only over cells equal in every other swept key.

For an axis, a "rest" is a setting of the other swept keys. The matched rests are those where every value of the
axis (that finished anywhere) finished; a row of an axis table and a main effect are means over the matched rests
only, so that a grid whose `include` adds a value in one corner is not read as factorial. Cells outside the
matched rests have no matched partner: the table says which.

The mean of a row is the equal-weight mean of its cells' logged scores; its standard error comes from the paired
bootstrap over questions (`paired.stat`: the same resampled questions for every cell) combined with the seed
spread; where per-question scores are missing, `stats.of_cells`' bound. A difference is printed from the same two
means, so that a finding and its table print the same number.
"""
from __future__ import annotations

import math

from . import paired
from . import stats as st
from .results import AVG, Metric, Results


def rest(key: tuple, i: int) -> tuple:
    return key[:i] + key[i + 1:]


def matched_rests(results: Results, axis: str, done: set[tuple]) -> tuple[list[tuple], list[tuple]]:
    """(the rests where the grid has a cell, `done`: the settings of every run, for each value of `axis`; the keys
    outside them). A cell that failed keeps its rest matched (its row says it is averaged over fewer settings);
    a value an `include` adds in one corner does not. With no rest complete, every rest is kept (and nothing is
    called unmatched): the rows then pool unmatched cells."""
    i = results.axes.index(axis)
    values = [v for v in results.values[axis] if any(k[i] == v for k in done)]
    rests = list(dict.fromkeys(rest(k, i) for k in done))
    complete = [r for r in rests if all(r[:i] + (v,) + r[i:] in done for v in values)]
    if not complete:
        return rests, []
    return complete, [k for k in done if rest(k, i) not in complete]


def key_of(r: tuple, i: int, value: str) -> tuple:
    return r[:i] + (value,) + r[i:]


def _se(results: Results, terms: list[paired.Term]) -> float | None:
    s = paired.stat(results, terms)
    return s.se if s is not None else None


def mean(results: Results, keys: list[tuple], m: Metric, cells: dict) -> st.Stat | None:
    """The equal-weight mean of the cells `keys` on `m` (cells: key -> {column: Stat}), paired se where known."""
    s = st.of_cells([cells[k][m.column] for k in keys])
    if s is not None and m.column == AVG:   # its tasks' paired se's, the tasks independent of each other
        parts = [_se(results, [(1 / len(keys), k, t.task, t.shots) for k in keys]) for t in results.score_metrics]
        if parts and all(p is not None for p in parts):
            se = math.sqrt(sum(p * p for p in parts)) / len(parts)
            return st.Stat(s.mean, s.n, s.sd, se, (s.mean - st.Z95 * se, s.mean + st.Z95 * se))
        return s
    if s is None or not m.task or not m.column.startswith("score/"):
        return s
    se = _se(results, [(1 / len(keys), k, m.task, m.shots) for k in keys])
    if se is None:
        return s
    return st.Stat(s.mean, s.n, s.sd, se, (s.mean - st.Z95 * se, s.mean + st.Z95 * se))


def difference(results: Results, keys: list[tuple], bases: list[tuple], m: Metric, cells: dict) -> st.Stat | None:
    """mean(keys) - mean(bases) (matched, the same length), paired over questions and seeds where known; else the
    two means' errors as independent (an upper bound when the cells share questions)."""
    a, b = st.of_cells([cells[k][m.column] for k in keys]), st.of_cells([cells[k][m.column] for k in bases])
    if a is None or b is None:
        return None
    diff = a.mean - b.mean
    se = None
    if m.task and m.column.startswith("score/"):
        se = _se(results, [(1 / len(keys), k, m.task, m.shots) for k in keys] +
                 [(-1 / len(bases), k, m.task, m.shots) for k in bases])
    if se is None and a.se is not None and b.se is not None:
        se = math.sqrt(a.se**2 + b.se**2)
    ci = (diff - st.Z95 * se, diff + st.Z95 * se) if se is not None else None
    return st.Stat(diff, a.n + b.n, None, se, ci)
