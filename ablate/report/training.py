"""Scores over training (cells run with `eval.every`): score against step, one line per value of each swept axis
(the mean over the cells with that value), and a finding where an axis's leader changes as training goes on, as
MM1 reads its lessons from curves rather than from one step.

`curves`: cell id -> {metric: [(step, score), ...]} for the metrics `during/<task>/<k>shot` (0..1), read from the
store by `ablate.tracking.results.score_curves`. Mid-training scores are on `eval.every_limit` questions: noisier
than the final tables, which is why the finding names the steps and leaves the verdict to the final scores.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .names import axis_label, task_label
from .results import Results

PREFIX = "during/"
MAX_PANELS = 6


def _task(metric: str) -> str:
    return metric.removeprefix(PREFIX).rsplit("/", 1)[0]


def by_value(results: Results, curves: dict, axis: str) -> dict[str, pd.Series]:
    """Per value of `axis`: the mean over its finished cells (and over the tasks) of the mid-training score at
    each step that every one of those cells logged."""
    done = results.finished()
    column = f"_label:{axis}"
    out = {}
    for value in results.values.get(axis, []):
        series = []
        for cell_id in done.loc[done[column] == value, "cell_id"]:
            metrics = curves.get(cell_id) or {}
            per_task = [pd.Series(dict(points), dtype=float) for points in metrics.values() if points]
            if per_task:
                series.append(pd.concat(per_task, axis=1).mean(axis=1, skipna=False))
        if series:
            out[value] = pd.concat(series, axis=1).dropna().mean(axis=1).sort_index()
    return {v: s for v, s in out.items() if len(s)}


def leader_changes(results: Results, curves: dict) -> list[str]:
    """One line per swept axis whose best value (mean mid-training score) is not the same at every logged step."""
    lines = []
    for axis in results.axes:
        lines_by_value = by_value(results, curves, axis)
        if len(lines_by_value) < 2:
            continue
        table = pd.DataFrame(lines_by_value).dropna()
        if len(table) < 2:
            continue
        leaders = table.idxmax(axis=1)
        first, last = leaders.iloc[0], leaders.iloc[-1]
        changes = int((leaders != leaders.shift()).iloc[1:].sum())
        if changes:
            lines.append(f"{axis_label(axis)}: the leader changes over training ({changes} time"
                         f"{'s' if changes > 1 else ''}): {first} leads at step {int(table.index[0])}, {last} at "
                         f"step {int(table.index[-1])} (mid-training scores on few questions; the tables give the "
                         "final ones).")
    return lines


def score_over_training(results: Results, curves: dict):
    """One panel per swept axis (up to `MAX_PANELS`): the mean mid-training score against the step, one line per
    value; None when no cell logged mid-training scores."""
    from .plots import OKABE_ITO, Plot, from_zero, style  # the report's figure conventions

    panels = [(axis, by_value(results, curves, axis)) for axis in results.axes][:MAX_PANELS]
    panels = [(axis, lines) for axis, lines in panels if lines]
    if not panels:
        return None
    ncols = min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.9 * nrows), layout="constrained")
    axs = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax, (axis, lines) in zip(axs, panels):
        for i, (value, series) in enumerate(lines.items()):
            ax.plot(series.index, 100 * series.to_numpy(), label=value, **{**style(i), "color": OKABE_ITO[i % 8]},
                    ms=4, lw=1.4)
        ax.set_title(axis_label(axis))
        ax.set_xlabel("Training step")
        ax.legend(frameon=False, fontsize=7)
    for ax in axs[len(panels):]:
        ax.set_visible(False)
    for ax in axs[::ncols]:
        ax.set_ylabel("Score (%)")
    from_zero([ax for ax in axs[:len(panels)]])
    tasks = sorted({_task(m) for metrics in curves.values() for m in (metrics or {})})
    caption = ("Scores over training: the mean mid-training score (" + ", ".join(task_label(t) for t in tasks)
               + ", 0-shot, on the first eval.every_limit questions) of the cells with each value, against the "
               "training step. Scores start at 0%.")
    return Plot("training", caption, fig)
