"""Does the image matter? Each task beside its blind evaluation, the answers' spread, and the findings they give.

A blind evaluation (`<task>_blind`, `eval.blind`) asks the same questions with the images shuffled among them, so
its score is what the model gets from the question alone, in the same input format. "What the image adds" is the
task's score minus the blind score in the same run, paired over the questions (`paired.stat`); over the grid, the
equal-weight mean over settings. A task whose image adds nothing beyond the noise, or whose answers collapse to one
answer per question type, is said at the top of the Findings (`lines`).

The majority answer (`baseline/<task>`, logged by the evaluation) is a question-only prior from the training
answers: the most common training answer of each question's prompt.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import paired
from . import stats as st
from .meta import ReportMeta
from .names import axis_label
from .results import BLIND, Metric, Results
from .tables import DAGGER, Table, TCell, TRow, pct, signed

ONE_ANSWER = 0.9   # a run "gives one answer" to a question type when its most common answer has this share


def pairs(results: Results) -> list[tuple[Metric, Metric]]:
    """(task score, its blind evaluation) for every task evaluated blind too."""
    return [(m, c) for m in results.score_metrics if not m.qtype and (c := results.control_of(m)) is not None]


def _keys(results: Results) -> list[tuple]:
    done = results.finished()
    return list(dict.fromkeys(done["_key"]))


def _independent(a: st.Stat | None, b: st.Stat | None) -> st.Stat | None:
    """a - b with independent errors: the fallback where per-question scores were not logged."""
    if a is None or b is None:
        return None
    se = (a.se**2 + b.se**2) ** 0.5 if a.se is not None and b.se is not None else None
    mean = a.mean - b.mean
    return st.Stat(mean, a.n, None, se, (mean - st.Z95 * se, mean + st.Z95 * se) if se is not None else None)


def _run_stat(results: Results, key: tuple, m: Metric) -> st.Stat | None:
    done = results.finished()
    runs = done[done["_key"] == key]
    if m.ci_low:
        return st.of_runs(runs[m.column], runs[m.ci_low], runs[m.ci_high])
    return st.of_runs(runs[m.column])


def gap(results: Results, keys: list[tuple], m: Metric, blind: Metric) -> tuple[st.Stat | None, bool]:
    """What the image adds on `m`, the equal-weight mean over settings `keys`, and whether it is paired."""
    terms = [(w / len(keys), k, t, m.shots) for k in keys for w, t in ((1, m.task), (-1, blind.task))]
    s = paired.stat(results, terms) if keys else None
    if s is not None:
        return s, True
    a = st.of_cells([_run_stat(results, k, m) for k in keys])
    b = st.of_cells([_run_stat(results, k, blind) for k in keys])
    return _independent(a, b), False


def _interval(s: st.Stat | None) -> str:
    if s is None:
        return "—"
    text = signed(s.mean)
    return text + (f" [{signed(s.ci[0])}, {signed(s.ci[1])}]" if s.ci is not None else "")


def _inside(s: st.Stat | None) -> bool:
    return s is not None and s.ci is not None and s.ci[0] <= 0 <= s.ci[1]


def image_table(results: Results, meta: ReportMeta) -> Table | None:
    """Per setting (seeds pooled) and over all: each task, its blind evaluation and what the image adds."""
    found = pairs(results)
    own = [c for c in results.controls if not c.task.endswith(BLIND) and not c.qtype]   # a user's controls
    keys = _keys(results)
    if not (found or own) or not keys:
        return None
    axes = results.axes
    header = [axis_label(a) for a in axes] or ["Setting"]
    for m, _ in found:
        header += [m.label, "blind", "image adds"]
    header += [f"{c.label} (control)" for c in own]
    rows, records, any_unpaired = [], [], False
    for key in keys + [None]:
        chosen = keys if key is None else [key]
        labels = ["mean over settings"] + [""] * (len(axes) - 1) if key is None else list(key) or ["all runs"]
        cells = [TCell([v]) for v in labels]
        record: dict[str, Any] = dict(zip(header, labels))
        for m, blind in found:
            a = st.of_cells([_run_stat(results, k, m) for k in chosen])
            b = st.of_cells([_run_stat(results, k, blind) for k in chosen])
            g, is_paired = gap(results, chosen, m, blind)
            any_unpaired |= not is_paired
            mark = f" {DAGGER}" if _inside(g) else ""
            cells += [TCell([pct(a.mean) if a else "—"]), TCell([pct(b.mean) if b else "—"]),
                      TCell([_interval(g) + mark], bold=g is not None and g.ci is not None and g.ci[0] > 0)]
            record |= {m.label: _pct(a), f"{m.label} blind": _pct(b),
                       f"{m.label} image adds": _pct(g, signed=True),
                       f"{m.label} image adds ci_low": 100 * g.ci[0] if g and g.ci else np.nan,
                       f"{m.label} image adds ci_high": 100 * g.ci[1] if g and g.ci else np.nan}
        for c in own:
            s = st.of_cells([_run_stat(results, k, c) for k in chosen])
            cells.append(TCell([pct(s.mean) if s else "—"]))
            record[f"{c.label} (control)"] = _pct(s)
        rows.append(TRow(cells, kind="baseline" if key is None else "row"))
        records.append(record)
    rows += _reference_rows(results, found, len(header) - 3 * len(found) - len(own), len(own))
    how = st.PAIRED if not any_unpaired else (
        st.PAIRED + "; where a run has no per-question scores, the two scores' own intervals, as independent")
    caption = ("What the image adds: each task's score (%) beside its blind evaluation, the same questions with "
               "the images shuffled among them (seeded: each image shows another question's), and the difference "
               f"in points. {how}. Bold: the image adds beyond the noise; {DAGGER}: inside the noise, the answers "
               "do not depend on the image. Majority answer: each question answered with the most common training "
               "answer of its prompt (a question-only prior)." + (" (control): a task marked `control` in the grid, "
                                                                  "kept out of Avg and the best cell." if own else ""))
    return Table("image", "What the image adds", caption, header, rows, max(1, len(axes)), [],
                 pd.DataFrame.from_records(records), n_axes=max(1, len(axes)))


def _pct(s: st.Stat | None, signed: bool = False) -> float:
    return round(100 * s.mean, 4) if s is not None else np.nan


def _reference_rows(results: Results, found: list[tuple[Metric, Metric]], n_label: int, n_own: int) -> list[TRow]:
    rows = []
    for kind, label in (("chance", "Chance"), ("baseline", "Majority answer")):
        levels = [results.reference(kind, m) for m, _ in found]
        if all(v is None for v in levels):
            continue
        cells = [TCell([label])] + [TCell([""]) for _ in range(n_label - 1)]
        for v in levels:
            cells += [TCell([pct(v) if v is not None else "—"]), TCell([""]), TCell([""])]
        rows.append(TRow(cells + [TCell([""]) for _ in range(n_own)], kind="reference"))
    return rows


def _types(results: Results, m: Metric) -> list[str | None]:
    found = [t.qtype for t in results.type_metrics.get(m.task, []) if t.qtype and t.shots == m.shots]
    return list(dict.fromkeys(found)) or [None]


def _type_score(results: Results, m: Metric, qtype: str | None, blind: bool = False) -> float | None:
    task = m.task + ("_blind" if blind else "")
    column = f"score/{task}/{m.shots}shot" + (f"/{qtype}" if qtype else "")
    done = results.finished()
    if column not in done.columns:
        return None
    values = pd.to_numeric(done[column], errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def run_collapsed(results: Results, cell_id: str, m: Metric) -> bool:
    """One run gives one answer to at least ONE_ANSWER of the questions of each type of `m` (False when its
    answers were not logged)."""
    tops = [paired.top_answer(results, cell_id, m.task, m.shots, qtype) for qtype in _types(results, m)]
    return bool(tops) and all(t is not None and t[1] >= ONE_ANSWER for t in tops)


def collapsed(results: Results, m: Metric, qtype: str | None) -> tuple[int, int, str, float]:
    """Over the finished runs: how many give one answer to >= ONE_ANSWER of the questions (of a type), of how
    many with per-question scores, the most common such answer and the mean share of each run's top answer."""
    tops = [t for c in results.finished()["cell_id"]
            if (t := paired.top_answer(results, str(c), m.task, m.shots, qtype)) is not None]
    if not tops:
        return 0, 0, "", float("nan")
    one = [t for t in tops if t[1] >= ONE_ANSWER]
    words = pd.Series([t[0] for t in (one or tops)]).value_counts()
    return len(one), len(tops), str(words.index[0]), float(np.mean([t[1] for t in tops]))


def answers_table(results: Results) -> Table | None:
    """Per task and question type: chance, the majority answer, the score, the blind score, and the runs' most
    common answer with its share (from every question's logged answer)."""
    if not paired.has_questions(results):
        return None
    header = ["Task", "Type", "Chance", "Majority answer", "Score", "Blind", "Most common answer", "Its share",
              "Runs giving one answer"]
    rows, records = [], []
    for m in [m for m in results.score_metrics if not m.qtype]:
        for qtype in _types(results, m):
            one, n, word, share = collapsed(results, m, qtype)
            if not n:
                continue
            probe = next((t for t in results.type_metrics.get(m.task, []) if t.qtype == qtype), m) if qtype else m
            chance, prior = results.reference("chance", probe), results.reference("baseline", probe)
            score, blind = _type_score(results, m, qtype), _type_score(results, m, qtype, blind=True)
            values = [m.label, qtype or "all", _opt(chance), _opt(prior), _opt(score), _opt(blind), f"“{word}”",
                      pct(share), f"{one} of {n}"]
            rows.append(TRow([TCell([v], bold=(j == 8 and one == n)) for j, v in enumerate(values)]))
            records.append(dict(zip(header, values)))
    if not rows:
        return None
    caption = (f"Answers per question type over every run's logged answers: the most common answer (the one most "
               f"runs give most often), the mean share of each run's most common answer, and how many runs give "
               f"one answer to at least {100 * ONE_ANSWER:.0f} % of the questions of the type (bold: all of them). "
               "Scores in %, the mean over runs; Blind: the same questions with the images shuffled; Majority "
               "answer: a question-only prior from the training answers.")
    return Table("answers", "Answers per question type", caption, header, rows, 2, [],
                 pd.DataFrame.from_records(records), group_labels=True, n_axes=2, right=[2, 3, 4, 5, 7, 8])


def _opt(x: float | None) -> str:
    return pct(x) if x is not None else "—"


def lines(results: Results) -> list[str]:
    """The findings about the image, first in the Findings: a task whose image adds nothing beyond the noise, and
    a task (or question type) whose answers collapse to one answer in most runs."""
    out = []
    keys = _keys(results)
    for m, blind in pairs(results):
        g, _ = gap(results, keys, m, blind)
        if g is None or g.ci is None or g.ci[0] > 0:
            continue
        a = st.of_cells([_run_stat(results, k, m) for k in keys])
        b = st.of_cells([_run_stat(results, k, blind) for k in keys])
        out.append(f"{m.label}: the answers do not depend on the image: with the images shuffled among the "
                   f"questions it scores {pct(b.mean)} % against {pct(a.mean)} %; the image adds "
                   f"{signed(g.mean)} pp (95% interval {signed(g.ci[0])} to {signed(g.ci[1])}), inside the noise")
    for m in [m for m in results.score_metrics if not m.qtype]:
        found = [(qtype, *collapsed(results, m, qtype)) for qtype in _types(results, m)]
        found = [(q, one, n, word) for q, one, n, word, _ in found if n and 2 * one > n]
        if found:
            what = ", ".join(f"{q or 'all'} “{w}” ({one} of {n} runs)" for q, one, n, w in found)
            out.append(f"{m.label}: the answers collapse to one per question type, whatever the image: {what} "
                       f"give one answer to at least {100 * ONE_ANSWER:.0f} % of the questions")
    return out
