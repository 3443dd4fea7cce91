"""Figures after MM1 (McKinzie et al., 2024): score vs visual tokens per connector (their Fig. 4), score vs
resolution, 0-shot vs few-shot bars per data mixture (their Fig. 5), training loss of every cell, and cost vs
score. Each figure is drawn only when the grid has the axes for it; a builder returns None otherwise.

What a reader can trust: every score axis starts at 0 (a gap inside the noise must not look large), every point
carries the tables' 95% interval as its error bar (`stats.INTERVAL`, the same numbers as the tables), and chance
and a task's own baseline are drawn as grey lines where known. Matplotlib's object API (`Figure`, no pyplot): no
global state. Okabe-Ito colours (colour-blind safe) with a distinct marker and dash per line, constrained layout
so that no label is clipped.
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
from matplotlib.lines import Line2D

from . import stats as st
from .names import axis_label, task_label
from .results import Metric, Results

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
DASHES = ["-", "--", "-.", ":"]
LOSS_DASHES = ["-", "--", "-.", (0, (6, 2, 1, 2, 1, 2))]  # dotted is kept for unfinished runs
REFERENCE_STYLE = {"chance": {"color": "#555555", "linestyle": ":", "lw": 1.2},
                   "baseline": {"color": "#555555", "linestyle": "--", "lw": 1.0}}
MAX_PANELS = 6  # score panels per (task, shots) up to this many; beyond, one panel per shot count (task mean)
RC = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
      "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
      "axes.spines.right": False, "font.family": "DejaVu Sans"}
ERROR_BARS = "Error bars: the tables' 95% intervals (mean ± 1.96 se; seed spread and evaluation bootstrap)."


@dataclass
class Plot:
    slug: str
    caption: str
    figure: Figure


def style(i: int) -> dict:
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": DASHES[(i // len(OKABE_ITO)) % len(DASHES)]}


def _cell_stats(results: Results, metrics: list[Metric]) -> dict[tuple, st.Stat]:
    """Per setting, seeds pooled: the mean of `metrics` in each run, with the interval the tables give it (one
    metric: its own; several: the tasks' bootstrap standard errors combined as for the Avg column)."""
    done = results.finished()
    value = done[[m.column for m in metrics]].mean(axis=1, skipna=False)
    low = high = None
    if all(m.ci_low for m in metrics):
        se = np.sqrt(sum(((done[m.ci_high] - done[m.ci_low]) / (2 * st.Z95)) ** 2 for m in metrics)) / len(metrics)
        low, high = value - st.Z95 * se, value + st.Z95 * se
    out = {}
    for key, idx in done.groupby("_key", sort=False).groups.items():
        s = st.of_runs(value.loc[idx], None if low is None else low.loc[idx], None if high is None else high.loc[idx])
        if s is not None:
            out[key] = s
    return out


def _marginal(results: Results, cells: dict[tuple, st.Stat], fixed: dict[str, str]) -> st.Stat | None:
    idx = {a: results.axes.index(a) for a in fixed}
    return st.of_cells([s for k, s in cells.items() if all(k[idx[a]] == v for a, v in fixed.items())])


def _over(results: Results, used: list[str]) -> str:
    others = [a for a in results.axes if a not in used]
    return f" Mean over {', '.join(others)} (equal weight per setting)." if others else ""


def _err(s: st.Stat | None) -> tuple[float, float]:
    """(below, above) the mean, in points: the 95% interval clipped to 0..100%."""
    if s is None or s.ci is None:
        return 0.0, 0.0
    return 100 * (s.mean - max(0.0, s.ci[0])), 100 * (min(1.0, s.ci[1]) - s.mean)


def _errorbar(ax, xs, stats: list[st.Stat], **kw):
    ys = [100 * s.mean for s in stats]
    errs = [_err(s) for s in stats]
    yerr = np.array(errs).T if any(a or b for a, b in errs) else None
    return ax.errorbar(xs, ys, yerr=yerr, capsize=2.5, **kw)


DODGE = 0.025  # share of the x range between neighbouring lines: tied points and their error bars stay apart


def dodge(i: int, n: int, xnum: list[float]) -> float:
    """The x offset of line `i` of `n`: lines side by side around each x value, so that two that tie show both
    markers and both error bars."""
    span = (max(xnum) - min(xnum)) if len(xnum) > 1 else 1.0
    return (i - (n - 1) / 2) * DODGE * span


def _line_axis(results: Results, x_axis: str | None) -> str | None:
    for a in ("connector.name", "encoder.name", "llm.name", "data.mixture"):
        if a in results.axes and a != x_axis:
            return a
    return None


def reference_level(results: Results, kind: str, metrics: list[Metric]) -> float | None:
    """A panel's chance / baseline level: its metric's, or the mean of its metrics' when all are known."""
    levels = [results.reference(kind, m) for m in metrics]
    return float(np.mean(levels)) if levels and all(v is not None for v in levels) else None


def draw_references(ax, results: Results, metrics: list[Metric], label: str = "middle") -> list[str]:
    """Grey horizontal lines at chance and at the task's baseline, labelled mid-panel under the line (`label`
    "middle": the points of a line plot sit at the ends), outside the panel's right edge ("outside": points
    anywhere along x, whose error bars a label inside would cross), or not at all ("none")."""
    drawn = []
    for kind, what in (("chance", "chance"), ("baseline", "task baseline")):
        level = reference_level(results, kind, metrics)
        if level is None:
            continue
        ax.axhline(100 * level, zorder=1, **REFERENCE_STYLE[kind])
        text, colour = f"{what} {100 * level:.1f}%", REFERENCE_STYLE[kind]["color"]
        if label == "middle":
            ax.annotate(text, xy=(0.5, 100 * level), xycoords=("axes fraction", "data"), xytext=(0, -2),
                        textcoords="offset points", ha="center", va="top", fontsize=7, color=colour)
        elif label == "outside":
            ax.annotate(text.replace(" ", "\n", 1), xy=(1.0, 100 * level), xycoords=("axes fraction", "data"),
                        xytext=(3, 0), textcoords="offset points", ha="left", va="center", fontsize=7,
                        color=colour, annotation_clip=False, gid=f"{kind}-label")
        drawn.append(kind)
    return drawn


def from_zero(axs, top: float | None = None) -> None:
    """Score axes start at 0% and end a little above the highest bar or line (at most 100%)."""
    high = max([top or 0.0] + [ax.dataLim.y1 for ax in axs if ax.has_data()] + [1.0])
    for ax in axs:
        ax.set_ylim(0, min(100.0, high * 1.1 + 1))


def _grid(fig, n: int, ncols: int, sharey: bool = True):
    rows = max(1, math.ceil(n / ncols))
    axs = fig.subplots(rows, ncols, squeeze=False, sharey=sharey).ravel()
    for ax in axs[n:]:
        ax.set_visible(False)
    return list(axs[:n])


def _ncols(n: int) -> int:
    return n if n <= 3 else (2 if n == 4 else 3)


def _score_panels(results: Results) -> list[tuple[str, list[Metric]]]:
    """One panel per task x shots (few enough), else one per shot count with the mean over tasks."""
    ms = [m for m in results.score_metrics if not m.qtype]
    if len(ms) <= MAX_PANELS:
        return [(m.label, [m]) for m in ms]
    return [(f"{k}-shot, mean over tasks", [m for m in ms if m.shots == k]) for k in results.shots]


def _type_panels(results: Results) -> list[tuple[str, str, list[Metric]]]:
    out = []
    for task, metrics in results.type_metrics.items():
        for k in sorted({m.shots for m in metrics}):
            typed = [m for m in metrics if m.qtype and m.shots == k]
            if typed:
                out.append((f"{task_label(task)} {k}-shot, by question type", task, typed))
    return out


def _numeric_x(results: Results, x_axis: str) -> tuple[list[str], list[float]]:
    xs = results.values[x_axis]
    return xs, [float(results.raw_values[x_axis][v]) for v in xs]


def _draw_types(results: Results, ax, x_axis: str, metrics: list[Metric]) -> int:
    """One line per question type (mean over every other axis)."""
    xs, xnum = _numeric_x(results, x_axis)
    drawn = 0
    for i, m in enumerate(metrics):
        cells = _cell_stats(results, [m])
        pts = [(x, s) for x, xv in zip(xnum, xs) if (s := _marginal(results, cells, {x_axis: xv})) is not None]
        if pts:
            drawn += 1
            px, ps = zip(*pts)
            level = results.reference("chance", m)
            label = m.qtype + (f" (chance {100 * level:.1f}%)" if level is not None else "")
            _errorbar(ax, [x + dodge(i, len(metrics), xnum) for x in px], list(ps), label=label, lw=1.5, ms=5,
                      **style(i))
            if level is not None:   # each type its own chance, in its colour (their mean is no type's chance)
                ax.axhline(100 * level, zorder=1, color=style(i)["color"], linestyle=":", lw=1.0, alpha=0.8,
                           gid=f"chance:{m.qtype}")
    if drawn:
        ax.legend(loc="best", fontsize=7, frameon=False, title="Question type", title_fontsize=7)
    return drawn


def score_lines(results: Results, x_axis: str, slug: str, what: str, by_type: bool = False) -> Plot | None:
    """Score vs a numeric axis: one panel per task x shots (or per shot count, tasks averaged, when there are
    many), one line per connector; with `by_type`, a second block of panels per task with question types."""
    if x_axis not in results.axes or not results.numeric(x_axis) or len(results.values[x_axis]) < 2:
        return None
    panels = _score_panels(results)
    if not panels:
        return None
    line_axis = _line_axis(results, x_axis)
    lines = results.values[line_axis] if line_axis else [None]
    typed = _type_panels(results) if by_type else []
    ncols = max(_ncols(len(panels)), _ncols(len(typed)) if typed else 1)
    rows_top, rows_typed = math.ceil(len(panels) / ncols), math.ceil(len(typed) / ncols)
    fig = Figure(figsize=(3.1 * ncols + 0.5, 2.9 * (rows_top + rows_typed) + 0.5), layout="constrained")
    top, bottom = (fig.subfigures(2, 1, height_ratios=[rows_top, rows_typed]) if typed else (fig, None))
    axs = _grid(top, len(panels), ncols)
    xs, xnum = _numeric_x(results, x_axis)
    drawn, refs = 0, set()
    for ax, (title, metrics) in zip(axs, panels):
        cells = _cell_stats(results, metrics)
        for i, lv in enumerate(lines):
            pts = [(x, s) for x, xv in zip(xnum, xs)
                   if (s := _marginal(results, cells, {x_axis: xv} | ({line_axis: lv} if line_axis else {})))]
            if pts:
                drawn += 1
                px, ps = zip(*pts)
                px = [x + dodge(i, len(lines), xnum) for x in px]
                _errorbar(ax, px, list(ps), label=lv or "all", lw=1.5, ms=5, **style(i))
        refs |= set(draw_references(ax, results, metrics))
        ax.set_title(title)
        ax.set_xlabel(axis_label(x_axis))
        ax.set_xticks(xnum, xs)
        ax.margins(x=0.08)
    if not drawn:
        return None
    for ax in axs[::ncols]:
        ax.set_ylabel("Score (%)")
    from_zero(axs)
    if line_axis:
        top.legend(*axs[0].get_legend_handles_labels(), loc="outside upper center", ncols=min(len(lines), 5),
                   title=axis_label(line_axis), frameon=False)
    typed_drawn = []
    if typed:
        taxs = _grid(bottom, len(typed), ncols)
        for ax, (title, task, metrics) in zip(taxs, typed):
            if _draw_types(results, ax, x_axis, metrics):
                typed_drawn.append(task)
            ax.set_title(title)
            ax.set_xlabel(axis_label(x_axis))
            ax.set_xticks(xnum, xs)
            ax.margins(x=0.08)
        for ax in taxs[::ncols]:
            ax.set_ylabel("Score (%)")
        from_zero(taxs)
    per = "task and shot count" if len(panels[0][1]) == 1 else "shot count (mean over tasks)"
    caption = (f"Score vs {what}, one panel per {per}"
               + (f", one line per {axis_label(line_axis).lower()}" if line_axis else "") + "."
               + _over(results, [x_axis] + ([line_axis] if line_axis else []))
               + f" {ERROR_BARS} Scores start at 0%."
               + (" Lines are drawn a little apart along x, so that points that tie stay visible."
                  if len(lines) > 1 else "") + _references_caption(refs))
    if typed_drawn:
        tasks = list(dict.fromkeys(typed_drawn))
        caption += (f" Lower panels: {', '.join(map(task_label, tasks))} per question type, mean over every other "
                    "axis: small text is where resolution should matter most; dotted, in each type's colour: "
                    "that type's chance (its legend gives the level).")
    return Plot(slug, caption, fig)


def _references_caption(refs: set[str]) -> str:
    parts = [{"chance": "dotted: chance (a random guess)", "baseline": "dashed: the task's own baseline"}[k]
             for k in ("chance", "baseline") if k in refs]
    return (" Grey lines, " + "; ".join(parts) + ".") if parts else ""


def mixture_bars(results: Results) -> Plot | None:
    """Bars per data mixture: 0-shot next to few-shot (MM1 Fig. 5)."""
    axis = "data.mixture"
    shots = results.shots
    if axis not in results.axes or len(shots) < 2:
        return None
    mixes = results.values[axis]
    fig = Figure(figsize=(max(6.0, 1.3 * len(mixes) + 2), 3.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(shots)
    refs = set()
    for i, k in enumerate(shots):
        metrics = [m for m in results.score_metrics if m.shots == k and not m.qtype]
        cells = _cell_stats(results, metrics)
        stats = [_marginal(results, cells, {axis: m}) for m in mixes]
        ys = [100 * s.mean if s else np.nan for s in stats]
        errs = np.array([_err(s) for s in stats]).T
        xs = np.arange(len(mixes)) + (i - (len(shots) - 1) / 2) * width
        ax.bar(xs, ys, width, yerr=errs if errs.any() else None, capsize=2, label=f"{k}-shot",
               color=OKABE_ITO[i % 8], hatch=["", "//", "..", "xx"][i % 4], edgecolor="white")
        level = reference_level(results, "chance", metrics)
        if level is not None:  # chance per shot count, over its bars only
            ax.hlines(100 * level, xs[0] - width / 2, xs[-1] + width / 2, **REFERENCE_STYLE["chance"])
            refs.add("chance")
    ax.set_xticks(np.arange(len(mixes)), [textwrap.fill(m, 18) for m in mixes])
    ax.set_xlabel("Data mixture (weights in % of samples)")
    ax.set_ylabel("Score (%, mean over tasks)")
    from_zero([ax])
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncols=len(shots), frameon=False)
    caption = ("Score per data mixture, zero-shot next to few-shot." + _over(results, [axis]) + f" {ERROR_BARS}"
               + _references_caption(refs))
    return Plot("mixture", caption, fig)


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average; the ends average what they have."""
    if window <= 1 or len(y) < 3:
        return y
    kernel = np.ones(window)
    return np.convolve(y, kernel, mode="same") / np.convolve(np.ones_like(y), kernel, mode="same")


def loss_curves(results: Results, curves: dict) -> Plot | None:
    """Training loss in small multiples: one panel per connector (or the first swept axis), one colour per
    setting of the other axes; seeds are averaged into one smoothed line per setting, the raw runs drawn faint."""
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    runs = results.runs.drop_duplicates("cell_id").set_index("cell_id")
    panel_axis = _line_axis(results, None) or (results.axes[0] if results.axes else None)
    others = [a for a in results.axes if a != panel_axis]
    groups: dict[tuple[str, str], list[tuple[str, bool]]] = {}  # (panel value, setting) -> [(cell id, done)]
    for cid in curves:
        if cid in runs.index:
            r = runs.loc[cid]
            panel = r[f"_label:{panel_axis}"] if panel_axis else ""
            setting = ", ".join(r[f"_label:{a}"] for a in others) if others else \
                (f"seed {int(r['seed'])}" if pd.notna(r["seed"]) and not panel_axis else "all runs")
            groups.setdefault((panel, setting), []).append((cid, r["_group"] == "finished"))
        else:
            groups.setdefault(("", str(cid)), []).append((cid, True))
    panels = list(dict.fromkeys(p for p, _ in groups))
    if panel_axis:
        order = results.values[panel_axis]
        panels.sort(key=lambda p: order.index(p) if p in order else len(order))
    settings = list(dict.fromkeys(s for _, s in groups))
    ncols = _ncols(len(panels))
    fig = Figure(figsize=(3.1 * ncols + 0.5, 2.8 * math.ceil(len(panels) / ncols) + 0.6), layout="constrained")
    axs = _grid(fig, len(panels), ncols)
    lows, highs, unfinished, smooth_range = [], [], 0, []
    for (panel, setting), members in groups.items():
        ax = axs[panels.index(panel)]
        j = settings.index(setting)
        colour = OKABE_ITO[j % 8]
        series = []
        for cid, done in members:
            steps, loss = (np.asarray(v, float) for v in zip(*curves[cid]))
            lows.append(loss.min())
            highs.append(loss.max())
            unfinished += not done
            ax.plot(steps, loss, color=colour, lw=0.6, alpha=0.25, linestyle="-" if done else ":")
            series.append(pd.Series(loss, index=steps))
        mean = pd.concat(series, axis=1).mean(axis=1).sort_index()
        window = max(1, len(mean) // 6) | 1
        smooth = _smooth(mean.to_numpy(), window)
        smooth_range.append((smooth.min(), smooth.max()))
        ax.plot(mean.index, smooth, color=colour, lw=1.6,
                linestyle=LOSS_DASHES[j % len(LOSS_DASHES)] if all(d for _, d in members) else ":", label=setting)
    for ax, panel in zip(axs, panels):
        ax.set_title(f"{axis_label(panel_axis)} = {panel}" if panel_axis and panel else (panel or "all runs"))
        ax.set_xlabel("Training step")
        if min(lows) > 0 and max(highs) / min(lows) > 20:  # decades apart: a log axis, plainly labelled
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        else:   # the thick lines fill the panel: raw spikes above them are cut, not the lines being compared
            low, high = min(r[0] for r in smooth_range), max(r[1] for r in smooth_range)
            ax.set_ylim(max(0.0, low - 0.08 * (high - low)), high + 0.08 * (high - low))
    for ax in axs[::ncols]:
        ax.set_ylabel("Training loss")
    handles = [Line2D([], [], color=OKABE_ITO[j % 8], lw=1.6, linestyle=LOSS_DASHES[j % len(LOSS_DASHES)])
               for j in range(len(settings))]
    if len(settings) > 1:
        fig.legend(handles, settings, loc="outside upper center", ncols=min(len(settings), 4), frameon=False,
                   title=", ".join(axis_label(a) for a in others) if others else None)
    seeds = any(len(m) > 1 for m in groups.values())
    caption = ("Training loss" + (f", one panel per {axis_label(panel_axis).lower()}" if panel_axis else "")
               + (f", one colour and dash per {', '.join(axis_label(a).lower() for a in others)}" if others else "")
               + ". Thick: " + ("the mean over seeds, " if seeds else "") + "smoothed (a centred moving average); "
               "faint: each run as logged" + ("; dotted: failed or unfinished runs" if unfinished else "")
               + ". The loss axis spans the thick lines: spikes of single steps above them are cut.")
    return Plot("loss", caption, fig)


def cost_vs_score(results: Results) -> Plot | None:
    """Average score against connector parameters and FLOPs, one point per setting: colour by connector, marker
    by the other swept values (a legend, not labels that collide); points at the same cost are spread apart."""
    done = results.finished()
    cols = [c for c in ("connector_params", "connector_flops", "cost/train_flops")
            if c in done.columns and pd.to_numeric(done[c], errors="coerce").notna().any()]
    metrics = [m for m in results.score_metrics if not m.qtype]
    cells = _cell_stats(results, metrics) if metrics else {}
    if not cols or len(cells) < 2:
        return None
    colour_axis = "connector.name" if "connector.name" in results.axes else (results.axes[0] if results.axes else None)
    others = [a for a in results.axes if a != colour_axis]
    combos = list(dict.fromkeys(", ".join(k[results.axes.index(a)] for a in others) for k in cells))
    by_marker = len(others) > 0 and len(combos) <= len(MARKERS)
    fig = Figure(figsize=(3.3 * len(cols) + 0.6, 3.6), layout="constrained")
    axs = fig.subplots(1, len(cols), sharey=True, squeeze=False)[0]
    for ax, col in zip(axs, cols):
        xs_all, points = [], []
        for key, s in cells.items():
            x = pd.to_numeric(done.loc[done["_key"] == key, col], errors="coerce").mean()
            if not math.isnan(x):
                xs_all.append(x)
                points.append((key, x, s))
        log = bool(xs_all) and max(xs_all) / max(min(xs_all), 1e-12) > 10
        same: dict[float, list] = {}
        for p in points:
            same.setdefault(round(p[1], 6), []).append(p)
        for group in same.values():
            for i, (key, x, s) in enumerate(group):
                shift = (i - (len(group) - 1) / 2) * 0.04  # a dodge of 4% of the x value per point
                x = x * (1 + shift) if log or x else x + shift
                j = results.values[colour_axis].index(key[results.axes.index(colour_axis)]) if colour_axis else 0
                combo = ", ".join(key[results.axes.index(a)] for a in others)
                marker = MARKERS[combos.index(combo) % len(MARKERS)] if by_marker else MARKERS[j % len(MARKERS)]
                _errorbar(ax, [x], [s], color=OKABE_ITO[j % 8], marker=marker, ms=6, linestyle="none")
        if log:
            ax.set_xscale("log")
        ax.margins(x=0.15)
        ax.set_xlabel({"connector_params": "Connector parameters", "connector_flops": "Connector FLOPs per image",
                       "cost/train_flops": "Training FLOPs (the cell's)"}[col])
        ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter())
        if not log:
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
        refs = draw_references(ax, results, metrics, label="outside" if ax is axs[-1] else "none")
    axs[0].set_ylabel("Average score (%)")
    from_zero(list(axs))
    handles, labels = [], []
    if colour_axis:
        for j, v in enumerate(results.values[colour_axis]):
            handles.append(Line2D([], [], color=OKABE_ITO[j % 8], marker="o" if by_marker else MARKERS[j % 8],
                                  linestyle="none"))
            labels.append(v)
    if by_marker:
        for i, combo in enumerate(combos):
            handles.append(Line2D([], [], color="#444444", marker=MARKERS[i % len(MARKERS)], linestyle="none"))
            labels.append(combo)
    if handles:
        title = axis_label(colour_axis) + (f"; {', '.join(axis_label(a) for a in others)}" if by_marker else "")
        fig.legend(handles, labels, loc="outside right upper", title=title, frameon=False)
    caption = ("Cost vs average score: one point per setting (seeds pooled)"
               + (f", colour: {axis_label(colour_axis).lower()}" if colour_axis else "")
               + (f"; marker: {', '.join(axis_label(a).lower() for a in others)}" if by_marker else "")
               + ". Points at the same cost are spread a little apart."
               + (" Training FLOPs: one training step counted on the cell's first batch, times its steps."
                  if "cost/train_flops" in cols else "")
               + " " + ERROR_BARS + " Scores start at 0%."
               + _references_caption(set(refs)))
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
