"""Figures after MM1 (McKinnon et al., 2024): score vs visual tokens per connector (their Fig. 4), score vs
resolution, 0-shot vs few-shot bars per data mixture (their Fig. 5), training loss of every cell, and cost vs
score. Each figure is drawn only when the grid has the axes for it; a builder returns None otherwise.

Matplotlib's object API (`Figure`, no pyplot): no global state. Okabe-Ito colours (colour-blind safe) with a
distinct marker and dash per line, constrained layout so that no label is clipped.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import stats as st
from .names import axis_label, task_label
from .results import AVG, Metric, Results

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
DASHES = ["-", "--", "-.", ":"]
RC = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
      "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
      "axes.spines.right": False, "font.family": "DejaVu Sans"}


@dataclass
class Plot:
    slug: str
    caption: str
    figure: Figure


def style(i: int) -> dict:
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": DASHES[(i // len(OKABE_ITO)) % len(DASHES)]}


def _shot_columns(results: Results) -> dict[int, list[str]]:
    cols: dict[int, list[str]] = {}
    for m in results.metrics:
        if m.shots >= 0:
            cols.setdefault(m.shots, []).append(m.column)
    return cols


def _cell_stats(results: Results, columns: list[str]) -> dict[tuple, st.Stat]:
    """Per setting: the mean over `columns` of each run, pooled over seeds."""
    done = results.finished()
    value = done[columns].mean(axis=1, skipna=False)
    out = {}
    for key, idx in done.groupby("_key", sort=False).groups.items():
        s = st.of_runs(value.loc[idx])
        if s is not None:
            out[key] = s
    return out


def _marginal(results: Results, cells: dict[tuple, st.Stat], fixed: dict[str, str]) -> st.Stat | None:
    idx = {a: results.axes.index(a) for a in fixed}
    return st.of_cells([s for k, s in cells.items() if all(k[idx[a]] == v for a, v in fixed.items())])


def _over(results: Results, used: list[str]) -> str:
    others = [a for a in results.axes if a not in used]
    return f" Mean over {', '.join(others)} (equal weight per setting)." if others else ""


def _err(s: st.Stat) -> float:
    return 100 * st.Z95 * s.se if s.se is not None else 0.0


def _line_axis(results: Results, x_axis: str) -> str | None:
    for a in ("connector.name", "encoder.name", "llm.name", "data.mixture"):
        if a in results.axes and a != x_axis:
            return a
    return None


def _metric_cells(results: Results, m: Metric) -> dict[tuple, st.Stat]:
    """Per setting: one metric pooled over seeds, with the evaluation's interval when logged."""
    done = results.finished()
    out = {}
    for key, grp in done.groupby("_key", sort=False):
        s = st.of_runs(grp[m.column], grp[m.ci_low], grp[m.ci_high]) if m.ci_low else st.of_runs(grp[m.column])
        if s is not None:
            out[key] = s
    return out


def _type_row(results: Results, axs, x_axis: str, task: str) -> int:
    """One panel per shot count: one line per question type of `task` (mean over every other axis)."""
    xs = results.values[x_axis]
    xnum = [float(results.raw_values[x_axis][v]) for v in xs]
    drawn = 0
    for ax, k in zip(axs, sorted(_shot_columns(results))):
        typed = [m for m in results.type_metrics[task] if m.qtype and m.shots == k]
        for i, m in enumerate(typed):
            cells = _metric_cells(results, m)
            pts = [(x, 100 * s.mean, _err(s)) for x, xv in zip(xnum, xs)
                   if (s := _marginal(results, cells, {x_axis: xv})) is not None]
            if pts:
                drawn += 1
                px, py, pe = zip(*pts)
                below = [min(e, y) for y, e in zip(py, pe)]  # a score interval stops at 0%
                ax.errorbar(px, py, yerr=[below, pe] if any(pe) else None, label=m.qtype, capsize=2, lw=1.5,
                            ms=5, **style(i))
        ax.set_title(f"{task_label(task)} {k}-shot, by question type")
        ax.set_xlabel(axis_label(x_axis))
        ax.set_xticks(xnum, xs)
    if drawn:  # beside the row, not over its lines
        axs[-1].legend(*axs[0].get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(1.02, 1),
                       title="Question type", frameon=False)
    axs[0].set_ylabel("Score (%)")
    return drawn


def score_lines(results: Results, x_axis: str, slug: str, what: str, by_type: bool = False) -> Plot | None:
    """Score (mean over tasks) vs a numeric axis, one panel per shot count, one line per connector; with
    `by_type`, one more row per task with question types: a line per type (text-small vs text-large)."""
    if x_axis not in results.axes or not results.numeric(x_axis) or len(results.values[x_axis]) < 2:
        return None
    line_axis = _line_axis(results, x_axis)
    lines = results.values[line_axis] if line_axis else [None]
    shots = _shot_columns(results)
    if not shots:
        return None
    typed = list(results.type_metrics) if by_type else []
    fig = Figure(figsize=(3.0 * len(shots) + 1.6, 3.2 * (1 + len(typed))), layout="constrained")
    grid = fig.subplots(1 + len(typed), len(shots), sharey="row", squeeze=False)
    axs = grid[0]
    xs = results.values[x_axis]
    xnum = [float(results.raw_values[x_axis][v]) for v in xs]
    drawn = 0
    for ax, (k, cols) in zip(axs, shots.items()):
        cells = _cell_stats(results, cols)
        for i, lv in enumerate(lines):
            pts = []
            for x, xv in zip(xnum, xs):
                s = _marginal(results, cells, {x_axis: xv} | ({line_axis: lv} if line_axis else {}))
                if s is not None:
                    pts.append((x, 100 * s.mean, _err(s)))
            if pts:
                drawn += 1
                px, py, pe = zip(*pts)
                ax.errorbar(px, py, yerr=pe if any(pe) else None, label=lv or "all", capsize=2, lw=1.5, ms=5,
                            **style(i))
        ax.set_title(f"{k}-shot")
        ax.set_xlabel(axis_label(x_axis))
        ax.set_xticks(xnum, xs)
    if not drawn:
        return None
    axs[0].set_ylabel("Score (%, mean over tasks)")
    if line_axis:
        fig.legend(*axs[0].get_legend_handles_labels(), loc="outside right upper", title=axis_label(line_axis))
    typed_rows = [task for row, task in zip(grid[1:], typed) if _type_row(results, row, x_axis, task)]
    caption = (f"Score vs {what}, one panel per shot count"
               + (f", one line per {axis_label(line_axis).lower()}" if line_axis else "") + "."
               + _over(results, [x_axis] + ([line_axis] if line_axis else []))
               + " Error bars: 95% interval from the seed spread (when there are replicates).")
    if typed_rows:
        caption += (f" Lower row{'s' * (len(typed_rows) > 1)}: {', '.join(map(task_label, typed_rows))} per "
                    "question type, mean over every other axis, with the evaluation's 95% intervals: small text "
                    "is where resolution should matter most.")
    return Plot(slug, caption, fig)


def mixture_bars(results: Results) -> Plot | None:
    """Bars per data mixture: 0-shot next to few-shot (MM1 Fig. 5)."""
    axis = "data.mixture"
    shots = _shot_columns(results)
    if axis not in results.axes or len(shots) < 2:
        return None
    mixes = results.values[axis]
    fig = Figure(figsize=(max(6.0, 1.3 * len(mixes) + 2), 3.2), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(shots)
    for i, (k, cols) in enumerate(shots.items()):
        cells = _cell_stats(results, cols)
        ys, es = [], []
        for m in mixes:
            s = _marginal(results, cells, {axis: m})
            ys.append(100 * s.mean if s else np.nan)
            es.append(_err(s) if s else 0)
        xs = np.arange(len(mixes)) + (i - (len(shots) - 1) / 2) * width
        ax.bar(xs, ys, width, yerr=es if any(es) else None, capsize=2, label=f"{k}-shot",
               color=OKABE_ITO[i % 8], hatch=["", "//", "..", "xx"][i % 4], edgecolor="white")
    ax.set_xticks(np.arange(len(mixes)), [textwrap.fill(m, 18) for m in mixes])
    ax.set_xlabel("Data mixture (weights in % of samples)")
    ax.set_ylabel("Score (%, mean over tasks)")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncols=len(shots), frameon=False)
    caption = "Score per data mixture, zero-shot next to few-shot." + _over(results, [axis])
    return Plot("mixture", caption, fig)


def loss_curves(results: Results, curves: dict) -> Plot | None:
    """Training loss of every cell on one plot; colour by the first swept axis when there are many cells."""
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    runs = results.runs.set_index("cell_id")
    first = results.axes[0] if results.axes else None
    many = len(curves) > 10 and first is not None
    fig = Figure(figsize=(6.8, 3.6), layout="constrained")
    ax = fig.subplots()
    seen = set()
    lows, highs, unfinished = [], [], 0
    for i, (cid, pts) in enumerate(curves.items()):
        steps, loss = zip(*pts)
        lows.append(min(loss))
        highs.append(max(loss))
        if cid in runs.index:
            r = runs.loc[cid]
            r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
            name = ", ".join(r["_key"]) + (f", seed {int(r['seed'])}" if pd.notna(r["seed"]) else "")
            group = r[f"_label:{first}"] if first else cid
            done = r["_group"] == "finished"
            if not done:
                name += f" ({r['_status_text'] or r['_group']})"
        else:
            name, group, done = cid, cid, True
        unfinished += not done
        if many:
            j = results.values[first].index(group) if group in results.values[first] else i
            label = None if group in seen else group
            seen.add(group)
            ax.plot(steps, loss, color=OKABE_ITO[j % 8], linestyle=DASHES[(j // 8) % 4] if done else ":", lw=1,
                    alpha=0.7, label=label)
        else:
            ax.plot(steps, loss, lw=1.3, label=name, **(style(i) | {"markevery": max(1, len(steps) // 8),
                                                                     "ms": 4}))
    if min(lows) > 0 and max(highs) / min(lows) > 5:
        ax.set_yscale("log")
    ax.set_xlabel("Training step")
    ax.set_ylabel("Training loss")
    fig.legend(loc="outside right upper", title=axis_label(first) if many else "cell")
    caption = ("Training loss of every cell" + (f", coloured by {axis_label(first).lower()}" if many else "")
               + ("; dotted: failed or unfinished cells" if many and unfinished else "")
               + " (as logged; not smoothed).")
    return Plot("loss", caption, fig)


def cost_vs_score(results: Results) -> Plot | None:
    """Average score against connector parameters and FLOPs, one point per setting."""
    done = results.finished()
    cols = [c for c in ("connector_params", "connector_flops")
            if c in done.columns and pd.to_numeric(done[c], errors="coerce").notna().any()]
    cells = _cell_stats(results, [AVG])
    if not cols or len(cells) < 2:
        return None
    colour_axis = "connector.name" if "connector.name" in results.axes else (results.axes[0] if results.axes else None)
    fig = Figure(figsize=(3.2 * len(cols) + 1.6, 3.3), layout="constrained")
    others = [a for a in results.axes if a != colour_axis]
    # label points with their other swept values only when that stays legible (few points, short labels)
    annotate = len(cells) <= 12 and all(len(", ".join(k[results.axes.index(a)] for a in others)) <= 10
                                        for k in cells)
    axs = fig.subplots(1, len(cols), sharey=True, squeeze=False)[0]
    for ax, col in zip(axs, cols):
        xs_all = []
        for key, s in cells.items():
            x = pd.to_numeric(done.loc[done["_key"] == key, col], errors="coerce").mean()
            if math.isnan(x):
                continue
            xs_all.append(x)
            j = results.values[colour_axis].index(key[results.axes.index(colour_axis)]) if colour_axis else 0
            lab = key[results.axes.index(colour_axis)] if colour_axis else None
            ax.errorbar([x], [100 * s.mean], yerr=[_err(s)] if _err(s) else None, capsize=2, ms=6,
                        linestyle="none", label=lab, **{k: v for k, v in style(j).items() if k != "linestyle"})
            rest = ", ".join(v for a, v in zip(results.axes, key) if a != colour_axis)
            if annotate and rest:
                note = ax.annotate(rest, (x, 100 * s.mean), xytext=(4, 3), textcoords="offset points", fontsize=7)
                note.set_in_layout(False)
        if xs_all and max(xs_all) / max(min(xs_all), 1e-12) > 10:
            ax.set_xscale("log")
        ax.margins(x=0.15, y=0.1)
        ax.set_xlabel("Connector parameters" if col == "connector_params" else "Connector FLOPs per image")
        ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter())
    axs[0].set_ylabel("Average score (%)")
    handles, labels = axs[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    if colour_axis and unique:
        fig.legend(unique.values(), unique.keys(), loc="outside right upper", title=axis_label(colour_axis))
    caption = ("Cost vs score: one point per setting (seeds pooled)"
               + (f", labelled with its {', '.join(others)}" if annotate and others else "") + ".")
    return Plot("cost", caption, fig)




def all_plots(results: Results, curves: dict) -> list[Plot]:
    """Every figure the grid has axes for, in report order."""
    with matplotlib.rc_context(RC):
        made = [score_lines(results, "connector.tokens", "tokens", "number of visual tokens"),
                score_lines(results, "encoder.resolution", "resolution", "image resolution", by_type=True),
                mixture_bars(results), cost_vs_score(results), loss_curves(results, curves)]
    return [p for p in made if p is not None]


def save(plot: Plot, path: Path, dpi: int = 200) -> Path:
    with matplotlib.rc_context(RC):
        plot.figure.savefig(path, dpi=dpi)
    return path
