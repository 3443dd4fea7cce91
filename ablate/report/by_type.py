"""Scores per question type, one table per task: where the effect of resolution and visual tokens shows.

MM1 (McKinzie et al., 2024, Section 3) found image resolution the strongest lever, and it matters most where
the answer is small in the image: TextVQA-style questions about small text (Singh et al., 2019). The embedded
world's questions carry a type (VQA: colour, shape, count, position; TextVQA: text-small, text-large); a
grid's average hides which of them a setting helps, this table does not.
"""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from .meta import ReportMeta
from .names import task_label
from .results import Results
from .tables import Table, baseline_text, full_entries, make_table, reading


def _counts(results: Results, task: str) -> str:
    """'n per type: colour 12, shape 12, ...' from the `n/<task>/<k>shot/<type>` columns of a finished run."""
    done = results.finished()
    parts = []
    for m in results.type_metrics.get(task, []):
        if not m.qtype or m.shots != min(x.shots for x in results.type_metrics[task]):
            continue
        col = f"n/{task}/{m.shots}shot/{m.qtype}"
        n = pd.to_numeric(done[col], errors="coerce").dropna() if col in done.columns else pd.Series(dtype=float)
        if len(n):
            parts.append(f"{m.qtype} {int(n.iloc[0])}")
    return f" Questions per type: {', '.join(parts)} (few questions: wide intervals)." if parts else ""


def type_table(results: Results, task: str, meta: ReportMeta) -> Table:
    """Every setting (seeds pooled) x (question type x shots, the overall score, ANLS when logged)."""
    view = replace(results, metrics=results.type_metrics[task])
    entries = full_entries(view)
    anls = any(m.column.startswith("anls/") for m in view.metrics)
    caption = (f"{task_label(task)} ({task}) by question type, for every setting of the grid (seeds pooled). "
               f"all: every question of the task (the score of the tables above)"
               + ("; ANLS: average normalised Levenshtein similarity to the closest reference (Biten et al., "
                  "2019), credit for near misses" if anls else "") + "."
               + _counts(results, task) + " " + reading(view, baseline_text(entries, results.axes, meta), avg=False))
    return make_table(view, entries, results.axes, meta, slug=f"types-{task.replace('_', '-')}",
                      title=f"{task_label(task)} by question type", caption=caption, show_cost=False,
                      group_labels=True)


def type_tables(results: Results, meta: ReportMeta) -> list[Table]:
    return [type_table(results, task, meta) for task in results.type_metrics]
