"""A page of sample predictions: what the best and the worst cell actually answered.

Numbers say how often a model is right; examples say how it is wrong (an empty answer, a plausible colour, the
word from the demonstration). Each run logs a sample of its evaluation as the MLflow table `predictions.json`
(task, shots, id, image, question, prediction, references, correct, type); the report reads it back through a
loader `cell_id -> DataFrame | None` and shows a representative draw of it (`choose`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .names import axis_label, task_label
from .results import AVG, BLIND, Results

Loader = Callable[[str], "pd.DataFrame | None"]


@dataclass
class Example:
    image: Path | None  # None: the image file is not on this machine
    task: str  # "TextVQA 0-shot"
    qtype: str
    question: str
    prediction: str
    references: list[str]
    score: float  # the question's score in 0..1 (VQA accuracy can be partial)

    @property
    def verdict(self) -> str:
        if math.isnan(self.score):
            return "—"
        if self.score >= 0.999:
            return "correct"
        return "wrong" if self.score <= 0.001 else f"partly ({100 * self.score:.0f}%)"


@dataclass
class ExampleSet:
    title: str  # "Best cell: connector = attn-pool, resolution = 128"
    caption: str
    examples: list[Example]


def as_loader(predictions: Loader | Mapping | None) -> Loader:
    if predictions is None:
        return lambda cell_id: None
    if isinstance(predictions, Mapping):
        return lambda cell_id: predictions.get(cell_id)
    return predictions


def _key(row) -> tuple:
    return (str(row["task"]), int(row["shots"]), str(row["id"]))


SEED = 0  # the draw of sample predictions: the same report for the same store


def _shares(n: int, sizes: list[int]) -> list[int]:
    """`n` split over groups of `sizes` as evenly as they allow (largest remainders), each at most its size."""
    out = [0] * len(sizes)
    for _ in range(min(n, sum(sizes))):
        open_ = [i for i, s in enumerate(sizes) if out[i] < s]
        out[min(open_, key=lambda i: (out[i], -sizes[i]))] += 1
    return out


def choose(frame: pd.DataFrame, n: int, accuracy: dict[tuple, float] | None = None,
           seed: int = SEED) -> list[tuple]:
    """Up to `n` question keys drawn at random (numpy, `seed`) and stratified: an even share per (task, shots),
    and within each as many right answers as the cell's accuracy on it gives (`accuracy[(task, shots)]`, 0..1;
    default: the share right in the logged sample), rounded. A page that shows 4 right of 8 is then a cell that
    gets about half right."""
    rng = np.random.default_rng(seed)
    groups = [(key, grp) for key, grp in frame.groupby(["task", "shots"], sort=False)]
    out: list[tuple] = []
    for (key, grp), k in zip(groups, _shares(n, [len(g) for _, g in groups])):
        correct = pd.to_numeric(grp["correct"], errors="coerce").fillna(0.0) >= 0.5
        rate = (accuracy or {}).get((str(key[0]), int(key[1])), float(correct.mean()))
        right = [_key(r) for _, r in grp[correct].iterrows()]
        wrong = [_key(r) for _, r in grp[~correct].iterrows()]
        n_right = min(len(right), max(k - len(wrong), int(round(k * rate))))
        for pool, m in ((right, n_right), (wrong, k - n_right)):
            picked = rng.choice(len(pool), size=min(m, len(pool)), replace=False) if pool and m else []
            out += [pool[i] for i in sorted(picked)]
    return out


def _examples(frame: pd.DataFrame, keys: list[tuple]) -> list[Example]:
    index = {_key(r): r for _, r in frame.iterrows()}
    out = []
    for key in keys:
        r = index.get(key)
        if r is None:
            continue
        image = Path(str(r.get("image") or ""))
        refs = r.get("references")
        refs = list(refs) if isinstance(refs, (list, tuple)) else [str(refs)] if refs is not None else []
        score = pd.to_numeric(r.get("correct"), errors="coerce")
        out.append(Example(image if image.name and image.is_file() else None,
                           f"{task_label(key[0])} {key[1]}-shot", str(r.get("type") or ""),
                           str(r.get("question") or ""), str(r.get("prediction") or ""), [str(x) for x in refs],
                           float(score) if pd.notna(score) else math.nan))
    return out


def _setting(results: Results, row: pd.Series) -> str:
    parts = [f"{axis_label(a)} = {row[f'_label:{a}']}" for a in results.axes]
    if pd.notna(row["seed"]):
        parts.append(f"seed {int(row['seed'])}")
    return ", ".join(parts) or str(row["cell_id"])


def _accuracy(row: pd.Series) -> dict[tuple, float]:
    """(task, shots) -> the cell's score on the whole task (`score/<task>/<k>shot`), where the frame has it."""
    out = {}
    for col, value in row.items():
        parts = str(col).split("/")
        if len(parts) == 3 and parts[0] == "score" and parts[2].endswith("shot") and pd.notna(value):
            try:
                out[(parts[1], int(parts[2].removesuffix("shot")))] = float(value)
            except ValueError:
                continue
    return out


def example_sets(results: Results, predictions: Loader | Mapping | None, n: int = 8) -> list[ExampleSet]:
    """The best and the worst finished run by Avg, `n` examples each from its tasks (not their blind copies or
    other controls), drawn at random and stratified by correctness at the cell's own accuracy (`choose`); one set
    when only one run finished or both are the same; none without predictions."""
    load = as_loader(predictions)
    done = results.finished().dropna(subset=[AVG]) if AVG in results.runs else results.finished().iloc[:0]
    if not len(done):
        return []
    ranked = done.sort_values(AVG, ascending=False, kind="stable")
    picks = [("Best", ranked.iloc[0])] + ([("Worst", ranked.iloc[-1])] if len(ranked) > 1 else [])
    controls = {m.task for m in results.controls}   # blind evaluations and tasks marked as controls
    out = []
    for which, row in picks:
        frame = load(str(row["cell_id"]))
        if frame is None or not len(frame) or not {"task", "shots", "id", "correct"} <= set(frame.columns):
            continue
        tasks = frame["task"].astype(str)
        frame = frame[~(tasks.isin(controls) | tasks.str.endswith(BLIND))]   # the tasks, not their controls
        if not len(frame):
            continue
        examples = _examples(frame, choose(frame, n, _accuracy(row)))
        right = sum(e.score >= 0.999 for e in examples)
        title = f"{which} cell: {_setting(results, row)}" if len(picks) > 1 else \
            f"The only finished cell: {_setting(results, row)}"
        caption = (f"Cell {row['cell_id']}, average score {100 * row[AVG]:.1f}%. {len(examples)} questions drawn "
                   f"at random (seed {SEED}) from its logged sample of {len(frame)} (predictions.json): an even "
                   "share per task, and within each task as many right answers as the cell's score on that task "
                   f"gives: {right} of {len(examples)} shown are correct.")
        out.append(ExampleSet(title, caption, examples))
    return out
