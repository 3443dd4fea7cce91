"""The results frame, read once: which columns are scores, which rows finished, which runs are replicates.

Input contract (docs/architecture.md, "Results frame"): one row per run with `cell_id`, `status`, `failure`,
one column per swept axis, `seed`, `score/<task>/<k>shot` in 0..1 with `ci_low/<task>/<k>shot` and
`ci_high/<task>/<k>shot` (also accepted: `ci_low/score/<task>/<k>shot`), `connector_params`, `connector_flops`,
`wall_s`. Runs that share every swept value but differ in seed are replicates of one setting.

Optional columns the report uses when present: per question type `score/<task>/<k>shot/<type>` (with `ci_low/`,
`ci_high/`, `n/`), `anls/<task>/<k>shot`, `text/perplexity` (held-out text perplexity of the LLM: lower is
better), `encoder/<name>` (a zoo encoder's pre-training figures), `encoder.name`, `time/train_s`, `time/eval_s`,
`cost/samples_per_s`, `cost/peak_memory_gib`, `cost/processes` (what training the cell cost, logged by cell.py),
`empty/<task>/<k>shot` (the share of empty predictions) and `eval/<task>/unk_share` (the share of the task's
prompt and answer tokens the LLM's tokenizer cannot spell): the table of empty predictions (`report.empty`).

Reference levels, drawn on figures and printed as rows of the score tables (0..1, the same for every run):
`chance/<task>` (or `chance/<task>/<k>shot`, per type `chance/<task>/<type>`) is the score of a random guess;
`baseline/<task>` (or `baseline/<task>/<k>shot`, `baseline/<task>/<type>`) is a task's own reference score, e.g.
a question-only model. The embedded TextVQA-style task needs no column: its answer is one of the world's
`data.world.n_words` words, so its chance is 1 / n_words (from the frame's column when swept, else the fixed
settings).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from . import stats as st
from .names import SEED_AXES, metric_label, value_label

SCORE = re.compile(r"^score/(?P<task>[^/]+)/(?P<k>\d+)shot$")
TYPE_SCORE = re.compile(r"^score/(?P<task>[^/]+)/(?P<k>\d+)shot/(?P<type>[^/]+)$")
AVG = "score/avg"
AVG_CI = ("ci_low/avg", "ci_high/avg")  # the average's interval, from its tasks' (independent) intervals
REFERENCES = {"chance": "Chance", "baseline": "Task baseline"}  # column prefix -> row label
WORD_TASKS = ("world_textvqa", "world_textvqa_blind")  # answered by one of the world's words: 1 / n_words
N_WORDS = "data.world.n_words"
PPL = "text/perplexity"
# Text PPL's references: a uniform guess over the LLM's vocabulary (its perplexity is the vocabulary's size) and
# the LM's own held-out perplexity before multimodal training (a zoo LM's pre-training figure)
PPL_REFERENCES = {"chance": "text/perplexity_uniform", "baseline": "llm/heldout_ppl"}
ENCODER_PREFIX = "encoder/"
# question types in reading order (the embedded world's); any other type follows alphabetically
TYPE_ORDER = ["colour", "shape", "count", "position", "text-small", "text-large"]

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
    percent: bool = True  # a 0..1 score shown in %; False: shown as is (perplexity)
    lower_better: bool = False  # perplexity: the lowest value is the best
    qtype: str = ""  # question type of a per-type score ("" for a task's overall score)
    control: bool = False  # a control (a blind evaluation, a custom task marked `control`): out of Avg and best


BLIND = "_blind"   # a blind evaluation's task: <task>_blind (ablate.evaluation.keys)


def is_control(frame: pd.DataFrame, task: str) -> bool:
    """A blind evaluation, or a task its runs mark as a control (`control/<task>` = 1)."""
    column = f"control/{task}"
    return task.endswith(BLIND) or (column in frame.columns and bool((pd.to_numeric(frame[column],
                                                                                      errors="coerce") == 1).any()))


@dataclass
class Results:
    """A cleaned copy of the results frame plus what the report needs to know about it.

    `runs` gains: `_group` (finished / failed / missing), `_status_text`, `_key` (tuple of value labels of the
    swept axes, the replicate key), one `_label:<axis>` column per axis, and `score/avg` (mean over every
    task x shots column of the run; NaN if one is missing).
    """

    runs: pd.DataFrame
    axes: list[str]
    metrics: list[Metric]  # task x shots columns, sorted by task then shots, then the average (and perplexity)
    values: dict[str, list[str]]  # axis -> value labels in table order
    raw_values: dict[str, dict[str, Any]]  # axis -> label -> one raw value (for plotting numbers)
    type_metrics: dict[str, list[Metric]] = field(default_factory=dict)  # task -> per-type, overall, ANLS columns
    encoder_metrics: list[str] = field(default_factory=list)  # `encoder/<name>` columns
    reference_notes: dict[str, str] = field(default_factory=dict)  # "chance/<task>" -> where the value comes from
    controls: list[Metric] = field(default_factory=list)  # control tasks' scores: kept out of `metrics`
    questions: dict[str, pd.DataFrame] = field(default_factory=dict)  # cell id -> its per-question rows
    leader_changes: list[str] = field(default_factory=list)  # findings from scores over training (report.training)

    def control_of(self, m: Metric) -> Metric | None:
        """The blind evaluation of a task's score (the same shots), if logged."""
        return next((c for c in self.controls if c.task == m.task + BLIND and c.shots == m.shots), None)

    def reference(self, kind: str, m: Metric) -> float | None:
        """The `kind` ("chance" or "baseline") level of a metric, in 0..1; None when unknown or not the same in
        every finished run. The average's is the mean of its tasks' when all are known."""
        if m.column == AVG:
            parts = [self.reference(kind, x) for x in self.score_metrics]
            return float(np.mean(parts)) if parts and all(p is not None for p in parts) else None
        if m.column == PPL:
            column = PPL_REFERENCES.get(kind)
            done = self.finished()
            if column not in done.columns:
                return None
            values = pd.to_numeric(done[column], errors="coerce").dropna().round(6).unique()
            return float(values[0]) if len(values) == 1 else None
        if not m.task or not m.column.startswith("score/"):
            return None
        names = [f"{kind}/{m.task}/{m.shots}shot", f"{kind}/{m.task}"]
        if m.qtype:  # a type's own level; the task's only where every type has the same answers (world words)
            names = [f"{kind}/{m.task}/{m.shots}shot/{m.qtype}", f"{kind}/{m.task}/{m.qtype}"] + \
                (names if m.task in WORD_TASKS else [])
        done = self.finished()
        for name in names:
            if name in done.columns:
                values = pd.to_numeric(done[name], errors="coerce").dropna().round(9).unique()
                return float(values[0]) if len(values) == 1 else None
        return None

    @property
    def has_replicates(self) -> bool:
        done = self.runs[self.runs["_group"] == "finished"]
        return bool(len(done)) and bool(done.groupby("_key").size().max() > 1)

    @property
    def has_ci(self) -> bool:
        return any(m.ci_low for m in self.metrics)

    @property
    def score_metrics(self) -> list[Metric]:
        """The task x shots columns (no average, no perplexity)."""
        return [m for m in self.metrics if m.shots >= 0]

    @property
    def has_perplexity(self) -> bool:
        return any(m.column == PPL for m in self.metrics)

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
    tasks = list(dict.fromkeys(m.task for m in found))  # the frame's (the grid's) task order
    return sorted(found, key=lambda m: (tasks.index(m.task), m.shots))


def _type_rank(qtype: str) -> tuple:
    return (TYPE_ORDER.index(qtype), "") if qtype in TYPE_ORDER else (len(TYPE_ORDER), qtype)


def find_type_metrics(frame: pd.DataFrame, overall: list[Metric]) -> dict[str, list[Metric]]:
    """Per task with per-type scores: for each shot count, one column per type, then the overall score
    ("all") and the task's ANLS when logged (Biten et al., 2019)."""
    by_task: dict[str, dict[int, list[Metric]]] = {}
    for col in frame.columns:
        m = TYPE_SCORE.match(str(col))
        if not m or not frame[col].notna().any():
            continue
        task, k, qtype = m["task"], m["k"], m["type"]
        tail = f"{task}/{k}shot/{qtype}"
        low, high = (f"ci_low/{tail}", f"ci_high/{tail}")
        ci = (low, high) if {low, high} <= set(frame.columns) else (None, None)
        by_task.setdefault(task, {}).setdefault(int(k), []).append(
            Metric(col, f"{qtype} {k}-shot", task, int(k), *ci, qtype=qtype))
    out: dict[str, list[Metric]] = {}
    order = list(dict.fromkeys([m.task for m in overall] + list(by_task)))
    for task in [t for t in order if t in by_task]:
        cols: list[Metric] = []
        for k in sorted(by_task[task]):
            cols += sorted(by_task[task][k], key=lambda m: _type_rank(m.qtype))
            cols += [replace(m, label=f"all {k}-shot") for m in overall if m.task == task and m.shots == k]
            anls = f"anls/{task}/{k}shot"
            if anls in frame.columns and frame[anls].notna().any():
                cols.append(Metric(anls, f"ANLS {k}-shot", task, k))
        out[task] = cols
    return out


def _order(labels: list[str], raw: dict[str, Any]) -> list[str]:
    """Numbers ascending; anything else in order of first appearance in the frame (the grid's order)."""
    if all(_is_number(raw[v]) for v in labels):
        return sorted(labels, key=lambda v: float(raw[v]))
    return labels


def _word_chance(runs: pd.DataFrame, fixed: dict | None, tasks: list[str]) -> dict[str, str]:
    """Adds `chance/<task>` = 1 / n_words for the embedded word-answer tasks that lack one; returns notes."""
    notes = {}
    for task in [t for t in tasks if t in WORD_TASKS and f"chance/{t}" not in runs.columns]:
        if N_WORDS in runs.columns:
            n = pd.to_numeric(runs[N_WORDS], errors="coerce")
        elif (fixed or {}).get(N_WORDS) is not None:
            n = pd.Series(float(fixed[N_WORDS]), index=runs.index)
        else:
            continue
        runs[f"chance/{task}"] = 1.0 / n.where(n > 0)
        words = sorted({int(x) for x in n.dropna()})
        notes[f"chance/{task}"] = f"1 / {', '.join(map(str, words))} world words"
    return notes


def load(frame: pd.DataFrame, swept_axes: list[str], fixed: dict | None = None,
         questions: dict[str, pd.DataFrame] | None = None) -> Results:
    """Validate and annotate the results frame. Raises `ValueError` naming a missing column. `fixed`: the
    grid's fixed settings (dotted keys), read for the embedded tasks' chance levels. `questions`: each run's
    per-question rows (cell id -> task, shots, id, type, prediction, correct), for paired statistics.
    Control tasks (`is_control`) go to `Results.controls`, out of the score columns, Avg and the best cell."""
    for col in ("cell_id", "status"):
        if col not in frame.columns:
            raise ValueError(f"results frame lacks column {col!r}; it has {list(frame.columns)}")
    axes = [a for a in swept_axes if a not in SEED_AXES]
    missing = [a for a in axes if a not in frame.columns]
    if missing:
        raise ValueError(f"swept axes {missing} are not columns of the results frame ({list(frame.columns)})")
    found = find_metrics(frame)
    metrics = [m for m in found if not is_control(frame, m.task)]
    controls = [replace(m, control=True) for m in found if is_control(frame, m.task)]
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
    type_metrics = {t: ms for t, ms in find_type_metrics(frame, found).items() if not is_control(frame, t)}
    numeric = [m.column for m in found] + [m.column for ms in type_metrics.values() for m in ms]
    numeric += [c for c in runs.columns if str(c).startswith(("ci_low/", "ci_high/", "n/", ENCODER_PREFIX)
                                                             + tuple(f"{k}/" for k in REFERENCES))]
    for col in dict.fromkeys(numeric + ([PPL] if PPL in runs.columns else [])):
        runs[col] = pd.to_numeric(runs[col], errors="coerce")
    runs[AVG] = runs[[m.column for m in metrics]].mean(axis=1, skipna=False) if metrics else np.nan
    extra = [Metric(AVG, "Avg")] if metrics else []
    if metrics and all(m.ci_low for m in metrics):  # independent tasks: se of the mean = sqrt(sum se^2) / T
        se = np.sqrt(sum(((runs[m.ci_high] - runs[m.ci_low]) / (2 * st.Z95)) ** 2 for m in metrics)) / len(metrics)
        runs[AVG_CI[0]], runs[AVG_CI[1]] = runs[AVG] - st.Z95 * se, runs[AVG] + st.Z95 * se
        extra = [Metric(AVG, "Avg", ci_low=AVG_CI[0], ci_high=AVG_CI[1])]
    if PPL in runs.columns and runs[PPL].notna().any():
        extra.append(Metric(PPL, "Text PPL ↓", percent=False, lower_better=True))
    encoder = [c for c in runs.columns if str(c).startswith(ENCODER_PREFIX) and runs[c].notna().any()]
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
    runs["_key"] = ([tuple(r) for r in runs[[f"_label:{a}" for a in axes]].itertuples(index=False)] if axes
                    else [()] * len(runs))
    notes = _word_chance(runs, fixed, list(dict.fromkeys(m.task for m in found)))
    return Results(runs, axes, metrics + extra, values, raw_values, type_metrics, encoder, notes, controls,
                   dict(questions or {}))
