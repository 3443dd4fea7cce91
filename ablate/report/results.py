"""The results frame, read once: which columns are scores, which rows finished, which runs are replicates.

Input contract (docs/architecture.md, "Results frame"): one row per run with `cell_id`, `status`, `failure`,
one column per swept axis, `seed`, `score/<task>/<k>shot` in 0..1 with `ci_low/<task>/<k>shot` and
`ci_high/<task>/<k>shot` (also accepted: `ci_low/score/<task>/<k>shot`), `connector_params`, `connector_flops`,
`wall_s`. Runs that share every swept value but differ in seed are replicates of one setting.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .names import SEED_AXES, axis_label, metric_label, value_label

SCORE = re.compile(r"^score/(?P<task>[^/]+)/(?P<k>\d+)shot$")
AVG = "score/avg"

# status column -> (group, words shown in tables: the failure kind, or why a missing cell has no scores)
_STATUS = {
    "FINISHED": ("finished", ""),
    "FAILED": ("failed", "failed"),
    "KILLED": ("failed", "failed (killed)"),
    "RUNNING": ("missing", "running"),
    "MISSING": ("missing", "pending"),
    "SCHEDULED": ("missing", "pending"),
    "PENDING": ("missing", "pending"),
}


@dataclass(frozen=True)
class Metric:
    """A score column and where its interval lives."""

    column: str
    label: str
    task: str = ""
    shots: int = -1
    ci_low: str | None = None
    ci_high: str | None = None


@dataclass
class Results:
    """A cleaned copy of the results frame plus what the report needs to know about it.

    `runs` gains: `_group` (finished / failed / missing), `_status_text`, `_key` (tuple of value labels of the
    swept axes, the replicate key), one `_label:<axis>` column per axis, and `score/avg` (mean over every
    task x shots column of the run; NaN if one is missing).
    """

    runs: pd.DataFrame
    axes: list[str]
    metrics: list[Metric]  # task x shots columns, sorted by task then shots, then the average
    values: dict[str, list[str]]  # axis -> value labels in table order
    raw_values: dict[str, dict[str, Any]]  # axis -> label -> one raw value (for plotting numbers)

    @property
    def has_replicates(self) -> bool:
        done = self.runs[self.runs["_group"] == "finished"]
        return bool(len(done)) and bool(done.groupby("_key").size().max() > 1)

    @property
    def has_ci(self) -> bool:
        return any(m.ci_low for m in self.metrics)

    @property
    def shots(self) -> list[int]:
        return sorted({m.shots for m in self.metrics if m.shots >= 0})

    def finished(self) -> pd.DataFrame:
        return self.runs[self.runs["_group"] == "finished"]

    def numeric(self, axis: str) -> bool:
        return all(_is_number(v) for v in self.raw_values[axis].values())


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _ci_column(frame: pd.DataFrame, side: str, task: str, k: str) -> str | None:
    for name in (f"{side}/{task}/{k}shot", f"{side}/score/{task}/{k}shot"):
        if name in frame.columns and frame[name].notna().any():
            return name
    return None


def find_metrics(frame: pd.DataFrame) -> list[Metric]:
    found = []
    for col in frame.columns:
        m = SCORE.match(str(col))
        if m:
            task, k = m["task"], m["k"]
            low, high = _ci_column(frame, "ci_low", task, k), _ci_column(frame, "ci_high", task, k)
            ci = (low, high) if low and high else (None, None)
            found.append(Metric(col, metric_label(task, int(k)), task, int(k), *ci))
    if not found:
        raise ValueError(f"results frame has no score/<task>/<k>shot column; columns: {list(frame.columns)}")
    tasks = list(dict.fromkeys(m.task for m in found))  # the frame's (the grid's) task order
    return sorted(found, key=lambda m: (tasks.index(m.task), m.shots))


def _order(labels: list[str], raw: dict[str, Any]) -> list[str]:
    """Numbers ascending; anything else in order of first appearance in the frame (the grid's order)."""
    if all(_is_number(raw[v]) for v in labels):
        return sorted(labels, key=lambda v: float(raw[v]))
    return labels


def load(frame: pd.DataFrame, swept_axes: list[str]) -> Results:
    """Validate and annotate the results frame. Raises `ValueError` naming a missing column."""
    for col in ("cell_id", "status"):
        if col not in frame.columns:
            raise ValueError(f"results frame lacks column {col!r}; it has {list(frame.columns)}")
    axes = [a for a in swept_axes if a not in SEED_AXES]
    missing = [a for a in axes if a not in frame.columns]
    if missing:
        raise ValueError(f"swept axes {missing} are not columns of the results frame ({list(frame.columns)})")
    metrics = find_metrics(frame)
    runs = frame.copy().reset_index(drop=True)
    if "failure" not in runs.columns:
        runs["failure"] = ""
    if "seed" not in runs.columns:
        runs["seed"] = np.nan
    status = runs["status"].astype(str).str.upper()
    unknown = sorted(set(status) - set(_STATUS))
    if unknown:
        raise ValueError(f"unknown status {unknown}; expected one of {sorted(_STATUS)}")
    runs["_group"] = [_STATUS[s][0] for s in status]
    runs["_status_text"] = [_STATUS[s][1] for s in status]
    for m in metrics:
        runs[m.column] = pd.to_numeric(runs[m.column], errors="coerce")
    runs[AVG] = runs[[m.column for m in metrics]].mean(axis=1, skipna=False)
    values: dict[str, list[str]] = {}
    raw_values: dict[str, dict[str, Any]] = {}
    for a in axes:
        labels = [value_label(v) for v in runs[a]]
        runs[f"_label:{a}"] = labels
        raw = {}
        for lab, v in zip(labels, runs[a]):
            raw.setdefault(lab, v)
        raw_values[a] = raw
        values[a] = _order(list(raw), raw)
    runs["_key"] = [tuple(r) for r in runs[[f"_label:{a}" for a in axes]].itertuples(index=False)] if axes else [()] * len(runs)
    avg = Metric(AVG, "Avg")
    return Results(runs, axes, metrics + [avg], values, raw_values)


def axis_caption(results: Results, axis: str) -> str:
    return f"{axis_label(axis)} ({axis}): " + ", ".join(results.values[axis])
