"""Answers the model did not give: the share of empty predictions per task and shot count, for every setting.

A prediction is empty when nothing is left of it after stripping: the model stopped at once, or generated only
tokens that decode to nothing, as a tokenizer's unknown token does. Every empty answer scores 0, so a task with
many of them measures the tokenizer or the stop rule more than what the model sees. Logged per run as
`empty/<task>/<k>shot` (`ablate.evaluation.runner`); the share of unknown tokens in a task's prompts and reference
answers (`eval/<task>/unk_share`, `ablate.data.vocabulary`) is the last row when the runs logged it.
"""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from .meta import ReportMeta
from .names import axis_label
from .results import Metric, Results
from .tables import Table, TCell, TRow, full_entries, pct

PREFIX = "empty/"
UNK = "eval/{task}/unk_share"


def empty_metrics(results: Results) -> list[Metric]:
    """One column per task x shots the runs logged an empty share for, in the score tables' order."""
    runs = results.runs
    out = []
    for m in results.score_metrics:
        if m.qtype:
            continue
        column = f"{PREFIX}{m.task}/{m.shots}shot"
        if column in runs.columns and pd.to_numeric(runs[column], errors="coerce").notna().any():
            out.append(Metric(column, m.label, m.task, m.shots, lower_better=True))
    return out


def empty_table(results: Results, meta: ReportMeta) -> Table | None:
    """Every setting (seeds pooled: the mean) x (task x shots): the share of empty predictions in %. None when
    no run logged one (runs made before it was measured)."""
    metrics = empty_metrics(results)
    if not metrics:
        return None
    runs = results.runs.copy()
    unk_columns = {m.task: UNK.format(task=m.task) for m in metrics}
    for column in [m.column for m in metrics] + [c for c in unk_columns.values() if c in runs.columns]:
        runs[column] = pd.to_numeric(runs[column], errors="coerce")
    view = replace(results, runs=runs, metrics=metrics)
    axes = results.axes
    header = [axis_label(a) for a in axes] or ["Setting"]
    header += [m.label for m in metrics]
    rows, records = [], []
    for e in full_entries(view):
        labels = [TCell([v]) for v in e.labels] or [TCell(["all runs"])]
        record = dict(zip(header, e.labels))
        if e.status:
            text = e.status + (f": {e.reason}" if e.reason else "")
            rows.append(TRow(labels + [TCell([text], span=len(metrics))],
                             kind="failed" if e.status.startswith("failed") else "missing"))
            records.append(record | {"status": e.status})
            continue
        cells = []
        for m in metrics:
            s = e.stats.get(m.column)
            cells.append(TCell([pct(s.mean)] if s is not None and s.mean == s.mean else ["—"],
                               bold=s is not None and s.mean > 0.5))
            record[m.label] = round(100 * s.mean, 4) if s is not None else float("nan")
        rows.append(TRow(labels + cells))
        records.append(record | {"status": "finished"})
    done = runs[runs["_group"] == "finished"]
    unk = {m.task: pd.to_numeric(done[unk_columns[m.task]], errors="coerce").dropna()
           for m in metrics if unk_columns[m.task] in done.columns}
    if any(len(v) for v in unk.values()):
        lead = [TCell(["Unknown tokens"])] + [TCell([""]) for _ in range(max(len(axes), 1) - 1)]
        values = {m.label: (float(unk[m.task].mean()) if m.task in unk and len(unk[m.task]) else None)
                  for m in metrics}
        rows.append(TRow(lead + [TCell([pct(v)] if v is not None else ["—"]) for v in values.values()],
                         kind="reference"))
        records.append({header[0]: "Unknown tokens", "status": "reference"}
                       | {k: round(100 * v, 4) for k, v in values.items() if v is not None})
    caption = ("Share of empty predictions in %, per task and shot count, for every setting of the grid (seeds "
               "pooled: the mean). A prediction is empty when nothing is left of the generated answer once spaces "
               "and newlines are stripped. It scores 0 whatever the model saw, so a high share (bold: above 50 %) "
               "points at the answer format, the stop rule or the LLM's tokenizer, not at the ablated setting."
               + (" Unknown tokens (last row): the share of the task's prompt and answer tokens that the LLM's "
                  "tokenizer spells as its unknown token, on the first 300 questions (mean over the runs); such "
                  "answers cannot be generated, see docs/data.md, \"Words the LLM cannot spell\"."
                  if any(len(v) for v in unk.values()) else ""))
    return Table("empty", "Empty predictions", caption, header, rows, max(len(axes), 1), [],
                 pd.DataFrame.from_records(records), group_labels=True, n_axes=max(len(axes), 1))
