"""A page of sample predictions: what the best and the worst cell actually answered.

Numbers say how often a model is right; examples say how it is wrong (an empty answer, a plausible colour, the
word from the demonstration). Each run logs a sample of its evaluation as the MLflow table `predictions.json`
(task, shots, id, image, question, prediction, references, correct, type); the report reads it back through a
loader `cell_id -> DataFrame | None` and shows the same questions for both cells where it can.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .names import axis_label, task_label
from .results import AVG, Results

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


def choose(frame: pd.DataFrame, n: int) -> list[tuple]:
    """Up to `n` question keys, round-robin over (task, shots) and within each alternating right and wrong
    answers, so that a page shows every task and both kinds of answer."""
    queues = []
    for _, grp in frame.groupby(["task", "shots"], sort=False):
        right = [_key(r) for _, r in grp.iterrows() if float(r["correct"]) >= 0.5]
        wrong = [_key(r) for _, r in grp.iterrows() if float(r["correct"]) < 0.5]
        mixed = [k for pair in zip(wrong, right) for k in pair]
        longer = wrong if len(wrong) > len(right) else right
        queues.append(mixed + longer[min(len(wrong), len(right)):])
    out: list[tuple] = []
    seen: set[tuple] = set()  # (task, id): one question at one shot count first, then repeats if need be
    for distinct in (True, False):
        pending = [list(q) for q in queues]
        while len(out) < n and any(pending):
            for q in pending:
                while q and len(out) < n:
                    key = q.pop(0)
                    if key in out or (distinct and (key[0], key[2]) in seen):
                        continue
                    out.append(key)
                    seen.add((key[0], key[2]))
                    break
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


def example_sets(results: Results, predictions: Loader | Mapping | None, n: int = 8) -> list[ExampleSet]:
    """The best and the worst finished run by Avg, `n` examples each (the same questions where both have
    them); one set when only one run finished or both are the same; none without predictions."""
    load = as_loader(predictions)
    done = results.finished().dropna(subset=[AVG]) if AVG in results.runs else results.finished().iloc[:0]
    if not len(done):
        return []
    ranked = done.sort_values(AVG, ascending=False, kind="stable")
    picks = [("Best", ranked.iloc[0])] + ([("Worst", ranked.iloc[-1])] if len(ranked) > 1 else [])
    frames = {}
    for _, row in picks:
        frame = load(str(row["cell_id"]))
        if frame is not None and len(frame) and {"task", "shots", "id", "correct"} <= set(frame.columns):
            frames[str(row["cell_id"])] = frame
    if not frames:
        return []
    first = next(iter(frames.values()))
    keys = choose(first, n)
    out = []
    for which, row in picks:
        frame = frames.get(str(row["cell_id"]))
        if frame is None:
            continue
        own = [k for k in keys if k in {_key(r) for _, r in frame.iterrows()}]
        chosen = own if len(own) >= min(n, len(frame)) // 2 else choose(frame, n)
        examples = _examples(frame, chosen)
        right = sum(e.score >= 0.999 for e in examples)
        title = f"{which} cell: {_setting(results, row)}" if len(picks) > 1 else \
            f"The only finished cell: {_setting(results, row)}"
        caption = (f"Cell {row['cell_id']}, average score {100 * row[AVG]:.1f}%. {len(examples)} questions from "
                   f"its logged sample of {len(frame)} (predictions.json), chosen to cover every task and both "
                   f"right and wrong answers, not at random: {right} of {len(examples)} shown are correct."
                   + (" The same questions as for the other cell, where both have them." if len(picks) > 1 else ""))
        out.append(ExampleSet(title, caption, examples))
    return out
