"""The grid's lessons in words: does the image matter, cells that did not learn, main effects of each axis and
settings that do not beat chance.

Everything is computed from the runs, with the tables' statistics (`stats`): a cell's score is the mean of its
seeds with the combined standard error (`stats.of_runs`); a main effect of value v of an axis is the difference of
the axis table's two rows (v and the baseline value), both the equal-weight mean over the matched settings of the
other axes (`matched`), its standard error from a paired bootstrap over questions and the seed spread where every
question's score is logged (`paired`), else from both rows' (sqrt(se_v² + se_b²)), and its interval mean ± 1.96 se.
"Beyond the noise" is said only when that interval excludes 0. A setting "is not above chance" when the lower end of
its marginal interval (the table's) is not above chance. A cell "did not learn" a task when its own interval is not
above chance or it gives one answer to at least 90 % of the questions of every type; a setting most of whose cells
did not learn is named so, whatever its mean.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import image, matched
from . import stats as st
from .meta import ReportMeta
from .names import value_label
from .results import Metric, Results

MAX_LINES = 8
METHOD = ("Each difference is to the axis's baseline value (the first row of its table), averaged with equal weight "
          "over the matched settings of the other axes and the seeds; its 95% interval is mean ± 1.96 standard "
          "errors, the standard error from a paired bootstrap over the questions (the same questions resampled for "
          "every cell) and the seed spread where every question's score is logged, else from both rows' intervals, "
          "as in the tables. \"Beyond the noise\": the interval excludes 0. Largest effects first.")
PER_SEED = " Per seed: the same difference within one seed's runs."
# what a score at chance on a task says about the model, as a reader wants it
AT_CHANCE = {"world_textvqa": "it did not learn to read within this budget"}
AT_CHANCE_DEFAULT = "it did no better than a random guess within this budget"


@dataclass(frozen=True)
class Effect:
    """Value `value` of `axis` minus its baseline `base` on `metric` (0..1 scale)."""

    axis: str
    value: str
    base: str
    metric: Metric
    diff: st.Stat
    per_seed: dict[int, float]  # seed -> difference averaged over the other axes' settings (that seed's runs)

    @property
    def beyond_noise(self) -> bool:
        return self.diff.ci is not None and (self.diff.ci[0] > 0 or self.diff.ci[1] < 0)


@dataclass(frozen=True)
class AtChance:
    """Value `value` of `axis`: its marginal score on `metric` is not above `chance`."""

    axis: str
    value: str
    metric: Metric
    score: st.Stat
    chance: float


def main_metrics(results: Results) -> list[Metric]:
    """Each task's main score: its overall score at the fewest shots."""
    out: dict[str, Metric] = {}
    for m in results.score_metrics:
        if m.task not in out or m.shots < out[m.task].shots:
            out[m.task] = m
    return list(out.values())


def _stat(runs: pd.DataFrame, m: Metric) -> st.Stat | None:
    if m.ci_low:
        return st.of_runs(runs[m.column], runs[m.ci_low], runs[m.ci_high])
    return st.of_runs(runs[m.column])


def baseline_value(results: Results, axis: str, meta: ReportMeta | None) -> str:
    wanted = (meta.baseline or {}) if meta is not None else {}
    if axis in wanted and value_label(wanted[axis]) in results.values[axis]:
        return value_label(wanted[axis])
    return results.values[axis][0]


def _rest(key: tuple, i: int) -> tuple:
    return key[:i] + key[i + 1:]


def _per_seed(done: pd.DataFrame, i: int, value: str, base: str, m: Metric) -> dict[int, float]:
    seeds = sorted(int(s) for s in done["seed"].dropna().unique())
    if len(seeds) < 2:
        return {}
    out = {}
    for seed in seeds:
        runs = done[done["seed"] == seed]
        score = {k: float(g[m.column].mean()) for k, g in runs.groupby("_key", sort=False)
                 if g[m.column].notna().any()}
        diffs = [score[k] - score[b] for k in score for b in score
                 if k[i] == value and b[i] == base and _rest(k, i) == _rest(b, i)]
        if diffs:
            out[seed] = float(np.mean(diffs))
    return out


def effects(results: Results, meta: ReportMeta | None = None) -> list[Effect]:
    """Every value of every axis with two or more values against the axis's baseline value, on each task's main
    score, over the matched settings of the other axes (`matched.matched_rests`) where both finished: the
    difference of the axis table's two rows, paired over questions and seeds where every question's score is
    logged."""
    done = results.finished()
    out = []
    for m in main_metrics(results):
        cells = {k: {m.column: s} for k, g in done.groupby("_key", sort=False) if (s := _stat(g, m)) is not None}
        for i, axis in enumerate(results.axes):
            if len(results.values[axis]) < 2:
                continue
            rests, _ = matched.matched_rests(results, axis, set(results.runs["_key"]))
            base = baseline_value(results, axis, meta)
            for value in results.values[axis]:
                if value == base:
                    continue
                keys = [k for k in cells if k[i] == value and _rest(k, i) in rests]
                bases = [k for k in cells if k[i] == base and _rest(k, i) in rests]
                if keys and bases:
                    diff = matched.difference(results, keys, bases, m, cells)
                    out.append(Effect(axis, value, base, m, diff, _per_seed(done, i, value, base, m)))
    return out


def at_chance(results: Results) -> list[AtChance]:
    """Each value of each axis (with two or more values) whose marginal score on a task's main score, equal-weight
    over the matched settings of the other axes with the tables' interval (`matched.mean`), is not above the task's
    chance level."""
    done = results.finished()
    out = []
    for m in main_metrics(results):
        chance = results.reference("chance", m)
        if chance is None:
            continue
        cells = {k: {m.column: s} for k, g in done.groupby("_key", sort=False) if (s := _stat(g, m)) is not None}
        for i, axis in enumerate(results.axes):
            if len(results.values[axis]) < 2:
                continue
            rests, _ = matched.matched_rests(results, axis, set(results.runs["_key"]))
            for value in results.values[axis]:
                keys = [k for k in cells if k[i] == value and _rest(k, i) in rests]
                s = matched.mean(results, keys, m, cells) if keys else None
                if s is None:
                    continue
                low = s.ci[0] if s.ci is not None else s.mean
                if low <= chance:
                    out.append(AtChance(axis, value, m, s, chance))
    return out


def _pp(x: float) -> str:
    text = f"{100 * x:+.1f}"
    return "0.0" if text[1:] == "0.0" else text.replace("-", "−")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}".replace("-", "−")


def _task(m: Metric) -> str:
    return m.task if m.shots == 0 else f"{m.task} {m.shots}-shot"


def _seeds_text(e: Effect) -> str:
    if not e.per_seed:
        return ""
    if not e.beyond_noise:  # the seeds of a difference inside the noise say nothing more at a glance
        return ""
    sign = np.sign(e.diff.mean)
    against = {s: d for s, d in e.per_seed.items() if np.sign(d) != sign or d == 0}
    if not against:
        return f"; in each of {len(e.per_seed)} seeds ({', '.join(_pp(d) for d in e.per_seed.values())})"
    listed = ", ".join(f"{s} ({_pp(d)})" for s, d in against.items())
    return f"; not in seed{'s' * (len(against) > 1)} {listed} of {len(e.per_seed)}"


def effect_line(e: Effect) -> str:
    text = f"{e.axis} {e.value} vs {e.base}: {_pp(e.diff.mean)} points on {_task(e.metric)}"
    if e.diff.ci is not None:
        lo, hi = e.diff.ci
        text += f" (95% interval {_pp(lo)} to {_pp(hi)})"
        text += ": beyond the noise" if e.beyond_noise else ": inside the noise"
    else:
        text += " (noise unknown: no intervals, no replicates)"
    return text + _seeds_text(e)


def chance_line(c: AtChance) -> str:
    ci = f" (95% interval {_pct(c.score.ci[0])} to {_pct(c.score.ci[1])})" if c.score.ci is not None else ""
    why = AT_CHANCE.get(c.metric.task, AT_CHANCE_DEFAULT)
    return (f"{c.axis} = {c.value}: {_task(c.metric)} {_pct(c.score.mean)} %{ci} is not above chance "
            f"({_pct(c.chance)} %): {why}")


def findings(results: Results, meta: ReportMeta | None = None, limit: int = MAX_LINES) -> tuple[list[str], int]:
    """The image's findings first (`image.lines`: a task whose answers do not depend on the image or collapse to
    one answer), then at most `limit` lines (effects beyond the noise first, then cells that did not learn, then
    settings at chance, then effects inside the noise, each largest first), shown effects first; and how many were
    left out."""
    found = effects(results, meta)
    strong = sorted([e for e in found if e.beyond_noise], key=lambda e: -abs(e.diff.mean))
    weak = sorted([e for e in found if not e.beyond_noise], key=lambda e: -abs(e.diff.mean))
    chance = sorted(at_chance(results), key=lambda c: c.score.mean - c.chance)
    listed = {(c.axis, c.value, c.metric.task) for c in chance}
    ranked = [("effect", e) for e in strong] + [("learn", x) for x in not_learned(results, listed)] + \
        [("chance", c) for c in chance] + [("effect", e) for e in weak]
    kept = ranked[:limit]
    shown_effects = sorted([x for k, x in kept if k == "effect"], key=lambda e: -abs(e.diff.mean))
    lines = [effect_line(e) for e in shown_effects] + [x for k, x in kept if k == "learn"] + \
        [chance_line(c) for k, c in kept if k == "chance"]
    return image.lines(results) + lines, len(ranked) - len(kept)


def _labels(results: Results, keys: list[tuple]) -> str:
    """Cells by their values, `a/b/c` in the order of the axes, which lead: "(x/y: 1/2; 3/4)"."""
    if not results.axes:
        return "the only cell"
    return f"{'/'.join(results.axes)} = " + "; ".join("/".join(k) for k in keys)


def not_learned(results: Results, listed: set[tuple] = frozenset()) -> list[str]:
    """Per task: the cells that did not learn it (their own interval not above chance, or one answer to at least
    90 % of the questions of every type in each run), then each setting of an axis most of whose cells did not
    (but not those in `listed`, (axis, value, task) already said to be at chance). Nothing for one cell."""
    done = results.finished()
    if done["_key"].nunique() < 2:
        return []
    out = []
    for m in main_metrics(results):
        chance = results.reference("chance", m)
        scored, bad = [], []
        for k, g in done.groupby("_key", sort=False):
            s = _stat(g, m)
            if s is None:
                continue
            scored.append(k)
            low = s.ci[0] if s.ci is not None else s.mean
            one = all(image.run_collapsed(results, str(c), m) for c in g["cell_id"])
            if (chance is not None and low <= chance) or one:
                bad.append(k)
        if not bad:
            continue
        level = f" ({_pct(chance)} %)" if chance is not None else ""
        out.append(f"{_task(m)}: {len(bad)} of {len(scored)} cells did not learn it (interval not above "
                   f"chance{level}, or one answer to nearly every question of a type): {_labels(results, bad)}")
        for i, axis in enumerate(results.axes):
            if len(results.values[axis]) < 2 or len(bad) == len(scored):
                continue
            for value in results.values[axis]:
                mine = [k for k in scored if k[i] == value]
                worst = [k for k in bad if k[i] == value]
                if len(mine) >= 2 and 2 * len(worst) > len(mine) and (axis, value, m.task) not in listed:
                    out.append(f"{axis} = {value} did not learn {_task(m)}: {len(worst)} of its {len(mine)} cells "
                               "did not (its mean says more of its other cells than of the setting)")
    return out
