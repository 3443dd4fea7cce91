"""Per-question scores read from the store (each run's `questions.json`) and the paired statistics built on them.

A run logs every question's answer and score; cells evaluated on the same questions are compared question by
question (`stats.paired`): a difference of two settings, a mean over settings, or what the image adds (a task minus
its blind evaluation in the same run). Where a run lacks its per-question scores (made before they were logged),
`stat` returns None and the caller falls back on the runs' own intervals, treated as independent.
"""
from __future__ import annotations

import pandas as pd

from . import stats as st
from .results import Results

Term = tuple[float, tuple, str, int]   # weight, setting (the `_key`), task, shots


def answers(results: Results, cell_id: str, task: str, shots: int) -> pd.DataFrame | None:
    """One run's per-question rows of one (task, shots): id, type, prediction, correct (None when not logged)."""
    frame = results.questions.get(cell_id)
    if frame is None or not len(frame) or "task" not in frame.columns:
        return None
    rows = frame[(frame["task"].astype(str) == task) & (pd.to_numeric(frame["shots"]) == shots)]
    return rows.drop_duplicates("id", keep="last").set_index("id") if len(rows) else None


def replicate_ids(results: Results, key: tuple) -> list[str]:
    """The finished runs of one setting, in seed order."""
    done = results.finished()
    runs = done[done["_key"] == key].sort_values("seed", na_position="last")
    return [str(c) for c in runs["cell_id"]]


def stat(results: Results, terms: list[Term]) -> st.Stat | None:
    """sum_t w_t x̄_t over the questions every run of every term answered, with the paired bootstrap and the seed
    spread (`stats.paired`); None when a run has no per-question scores."""
    series: list[tuple[float, list[pd.Series]]] = []
    for weight, key, task, shots in terms:
        runs = []
        for cell_id in replicate_ids(results, key):
            rows = answers(results, cell_id, task, shots)
            if rows is None:
                return None
            runs.append(pd.to_numeric(rows["correct"], errors="coerce"))
        if not runs:
            return None
        series.append((weight, runs))
    common = None
    for _, runs in series:
        for s in runs:
            common = s.index if common is None else common.intersection(s.index)
    if common is None or not len(common):
        return None
    order = sorted(common)
    return st.paired([(w, [s.loc[order].to_numpy(float) for s in runs]) for w, runs in series])


def top_answer(results: Results, cell_id: str, task: str, shots: int, qtype: str | None = None
               ) -> tuple[str, float, int] | None:
    """The most common prediction of a run on a task (or one question type of it), its share and the questions."""
    rows = answers(results, cell_id, task, shots)
    if rows is None:
        return None
    if qtype is not None:
        rows = rows[rows["type"].astype(str) == qtype]
    if not len(rows):
        return None
    counts = rows["prediction"].astype(str).str.strip().str.lower().value_counts()
    return str(counts.index[0]), float(counts.iloc[0] / len(rows)), int(len(rows))


def mean_over(results: Results, keys: list[tuple], task: str, shots: int) -> st.Stat | None:
    """The equal-weight mean over settings `keys`, paired over the questions."""
    return stat(results, [(1 / len(keys), k, task, shots) for k in keys]) if keys else None


def has_questions(results: Results) -> bool:
    return any(f is not None and len(f) for f in results.questions.values())
