"""MM1-style tables as a small format-neutral model (`Table`), rendered later to PDF, HTML, CSV, Markdown, LaTeX.

Layout after MM1 (McKinzie et al., 2024, "MM1: Methods, Analysis & Insights from Multimodal LLM Pre-training",
Tables 1-3): rows are the values of the swept axes, columns are task x shots plus an average; scores in % with
one decimal, the best of each column in bold (ties: all of them). Added here: a baseline row with signed deltas,
mean ± seed standard deviation with the number of runs n, 95% intervals (`stats.INTERVAL`), a dagger on values
inside the noise of the best, rows for failed and missing cells in place of scores, and reference rows (chance,
a task's own baseline) where the frame gives them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import matched
from . import stats as st
from .meta import ReportMeta
from .names import axis_label, fixed_items, task_label, value_label
from .results import AVG, PPL, REFERENCES, Metric, Results
from .units import human_count, human_flops, human_gib, human_seconds

DAGGER = "†"
DDAGGER = "‡"
MINUS = "−"
NOISE_NOTE = (f"{DAGGER} inside the noise of the best value in its column: the difference is smaller than "
              "1.96 times the combined standard error (seed spread and evaluation interval).")
COST_COLUMNS = {"connector_params": ("Params", human_count), "connector_flops": ("FLOPs", human_flops),
                "cost/samples_per_s": ("Samples/s", human_count), "cost/peak_memory_gib": ("Peak mem", human_gib),
                "cost/train_flops": ("Train FLOPs", human_flops)}
# measured while training: shown in every axis table
MEASURED = ("cost/samples_per_s", "cost/peak_memory_gib", "cost/train_flops")
PROCESSES = "cost/processes"


@dataclass
class TCell:
    lines: list[str]
    bold: bool = False
    span: int = 1


@dataclass
class TRow:
    cells: list[TCell]
    kind: str = "row"  # row | baseline | failed | missing | reference (chance, a task baseline: no score of a run)


@dataclass
class Table:
    """A rendered-format-neutral table. The first `n_label_cols` columns are labels (repeated when a wide table
    is split); `data` holds the numbers behind it for CSV (scores in %)."""

    slug: str
    title: str
    caption: str
    header: list[str]
    rows: list[TRow]
    n_label_cols: int
    footnotes: list[str] = field(default_factory=list)
    data: pd.DataFrame = field(default_factory=pd.DataFrame)
    group_labels: bool = False  # blank a label equal to the one above (grouped rows) in PDF / HTML
    n_axes: int = 0  # leading columns that hold swept values
    right: list[int] | None = None  # right-aligned columns (default: every column after the labels)

    def is_right(self, j: int) -> bool:
        return j in self.right if self.right is not None else j >= self.n_label_cols


def shown_labels(table: Table) -> list[list[str | None]]:
    """Per row, the first line of each axis label cell, or None where it repeats the row above (grouping)."""
    out, prev = [], None
    for row in table.rows:
        labels = [c.lines[0] if c.lines else "" for c in row.cells[: table.n_axes]]
        shown: list[str | None] = list(labels)
        if table.group_labels and prev is not None:
            for j in range(len(labels)):
                if labels[: j + 1] == prev[: j + 1] and len(row.cells[j].lines) == 1:
                    shown[j] = None
                else:
                    break
        out.append(shown)
        prev = labels
    return out


@dataclass
class _Entry:
    labels: list[str]
    stats: dict[str, st.Stat | None] = field(default_factory=dict)
    status: str = ""  # "" for a row with scores, else "failed ..." / "missing ..."
    reason: str = ""
    cost: dict[str, str] = field(default_factory=dict)
    cost_values: dict[str, float] = field(default_factory=dict)
    incomplete: str = ""


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def signed(x: float) -> str:
    text = f"{100 * x:+.1f}"
    return text.replace("-", MINUS)


def _raw(x: float, sign: bool = False) -> str:
    """A value shown as is (perplexity): two decimals below 100, none above."""
    digits = 2 if abs(x) < 100 else 0
    return (f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}").replace("-", MINUS)


def fmt(m: Metric, x: float, sign: bool = False) -> str:
    """A metric's value as printed: scores in % with one decimal, perplexity as is."""
    if m.percent:
        return signed(x) if sign else pct(x)
    return _raw(x, sign)


def scale(m: Metric, x: float) -> float:
    """A metric's value as exported to CSV (scores in %)."""
    return round(100 * x if m.percent else x, 4)


def short_reason(reason: Any, limit: int = 140) -> str:
    """The last non-empty line of a failure message (tracebacks end with the exception), shortened."""
    if reason is None or (isinstance(reason, float) and math.isnan(reason)) or not str(reason).strip():
        return "no reason recorded"
    line = [ln.strip() for ln in str(reason).strip().splitlines() if ln.strip()][-1]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _metric_stat(runs: pd.DataFrame, m: Metric) -> st.Stat | None:
    if m.ci_low:
        return st.of_runs(runs[m.column], runs[m.ci_low], runs[m.ci_high])
    return st.of_runs(runs[m.column])


def _cost(runs: pd.DataFrame) -> tuple[dict[str, str], dict[str, float]]:
    text, values = {}, {}
    for col, (_, fmt) in COST_COLUMNS.items():
        if col in runs.columns:
            v = pd.to_numeric(runs[col], errors="coerce").dropna()
            if len(v):
                lo, hi = float(v.min()), float(v.max())
                values[col] = float(v.mean())
                text[col] = _range(fmt(lo), fmt(hi))
    return text, values


def _range(lo: str, hi: str) -> str:
    """'1.2M', '3.4M' -> '1.2M–3.4M'; '158 MFLOPs', '356 MFLOPs' -> '158–356 MFLOPs'."""
    if lo == hi:
        return lo
    if " " in lo and lo.split(" ", 1)[1] == hi.split(" ", 1)[-1]:
        return f"{lo.split(' ', 1)[0]}–{hi}"
    return f"{lo}–{hi}"


def _status_entries(labels: list[str], runs: pd.DataFrame, replicates: bool) -> list[_Entry]:
    """One entry per distinct (status, reason) among unfinished runs of one setting."""
    out = []
    todo = runs[runs["_group"] != "finished"]
    reasons = [short_reason(f) if g == "failed" else t for g, t, f in
               zip(todo["_group"], todo["_status_text"], todo["failure"])]
    for (group, reason), grp in todo.groupby([todo["_group"], pd.Series(reasons, index=todo.index)], sort=False):
        seeds = [str(int(s)) for s in grp["seed"] if pd.notna(s)]
        who = f" (seed {', '.join(seeds)})" if replicates and seeds else ""
        cost_text, cost_values = _cost(grp)
        out.append(_Entry(labels, status=group + who, reason=reason, cost=cost_text, cost_values=cost_values))
    return out


def _cells_of(results: Results, finished: pd.DataFrame) -> dict[tuple, dict[str, st.Stat | None]]:
    return {key: {m.column: _metric_stat(grp, m) for m in results.metrics}
            for key, grp in finished.groupby("_key", sort=False)}


def _ordered_keys(results: Results) -> list[tuple]:
    keys = list(dict.fromkeys(results.runs["_key"]))
    rank = [{v: i for i, v in enumerate(results.values[a])} for a in results.axes]
    return sorted(keys, key=lambda k: tuple(r[v] for r, v in zip(rank, k)))


def full_entries(results: Results) -> list[_Entry]:
    """One entry per setting (replicates pooled) plus one per unfinished run group, in grid order."""
    runs, rep = results.runs, results.has_replicates
    cells = _cells_of(results, results.finished())
    out = []
    for key in _ordered_keys(results):
        grp = runs[runs["_key"] == key]
        labels = list(key)
        if key in cells:
            cost_text, cost_values = _cost(grp)
            out.append(_Entry(labels, cells[key], cost=cost_text, cost_values=cost_values))
        out += _status_entries(labels, grp, rep)
    return out


def marginal_entries(results: Results, axis: str) -> list[_Entry]:
    """One entry per value of `axis`: equal-weight mean over the matched settings of the other axes (those where
    every value finished: `matched.matched_rests`), the se paired over questions where known."""
    i = results.axes.index(axis)
    runs = results.runs
    cells = _cells_of(results, results.finished())
    rests, _ = matched.matched_rests(results, axis, set(runs["_key"]))
    out = []
    for value in results.values[axis]:
        keys = [k for k in dict.fromkeys(runs["_key"]) if k[i] == value]
        done = [k for k in keys if k in cells and matched.rest(k, i) in rests]
        grp = runs[runs["_key"].map(lambda k, v=value: k[i] == v)]
        cost_text, cost_values = _cost(grp)
        if not done:
            unfinished = grp[grp["_group"] != "finished"]
            failed = unfinished[unfinished["_group"] == "failed"]
            status = "failed" if len(failed) else "missing"
            reasons = failed["failure"].map(short_reason) if len(failed) else unfinished["_status_text"]
            out.append(_Entry([value], status=status, reason="; ".join(dict.fromkeys(reasons)), cost=cost_text,
                              cost_values=cost_values))
            continue
        stats = {m.column: matched.mean(results, done, m, cells) for m in results.metrics}
        note = f"{len(done)} of {len(keys)} settings" if len(done) < len(keys) and not any(
            k in cells and matched.rest(k, i) not in rests for k in keys) else ""
        out.append(_Entry([value], stats, cost=cost_text, cost_values=cost_values, incomplete=note))
    return out


def _baseline_index(entries: list[_Entry], axes: list[str], meta: ReportMeta) -> int | None:
    scored = [i for i, e in enumerate(entries) if not e.status]
    if not scored:
        return None
    wanted = {a: v for a, v in (meta.baseline or {}).items() if a in axes}
    if not wanted:
        return scored[0]
    for i in scored:
        if all(entries[i].labels[axes.index(a)] == value_label(v) for a, v in wanted.items()):
            return i
    return None


def _fixed_text(fixed: dict[str, Any], limit: int = 10) -> str:
    items = [f"{k} = {text}" for k, text in fixed_items(fixed)]
    if not items:
        return ""
    more = (f"; the other {len(items) - limit} fixed settings are on the first page (\"Fixed settings\")"
            if len(items) > limit else "")
    return "Fixed: " + "; ".join(items[:limit]) + more + "."


def _score_lines(m: Metric, s: st.Stat, base: st.Stat | None, is_base: bool, dagger: bool) -> list[str]:
    first = fmt(m, s.mean) + (f" ± {fmt(m, s.sd)}" if s.sd is not None else "") + (f" {DAGGER}" if dagger else "")
    lines = [first]
    if base is not None and not is_base:
        lines.append(f"Δ {fmt(m, s.mean - base.mean, sign=True)}")
    if s.ci is not None:
        low, high = (max(0.0, s.ci[0]), min(1.0, s.ci[1])) if m.percent else s.ci  # scores live in 0..100%
        lines.append(f"[{fmt(m, low)}, {fmt(m, high)}]")
    return lines


def _score_cell(m: Metric, s: st.Stat | None, top: st.Stat | None, base: st.Stat | None, is_base: bool, rep: bool,
                record: dict[str, Any]) -> tuple[TCell, bool]:
    """One score cell (bold when it reads the same as the best) and its CSV fields; True when it gets a dagger."""
    if s is None:
        return TCell(["—"]), False
    is_best = top is not None and fmt(m, s.mean) == fmt(m, top.mean)
    dagger = not is_best and top is not None and st.within_noise(s, top)
    record[m.label] = scale(m, s.mean)
    if s.sd is not None or rep:
        record[f"{m.label} sd"] = scale(m, s.sd) if s.sd is not None else math.nan
    if s.ci is not None:
        record[f"{m.label} ci_low"] = scale(m, s.ci[0])
        record[f"{m.label} ci_high"] = scale(m, s.ci[1])
    if base is not None:
        record[f"{m.label} delta"] = scale(m, s.mean - base.mean)
    record[f"{m.label} best"] = is_best
    record[f"{m.label} within_noise"] = dagger
    return TCell(_score_lines(m, s, base, is_base, dagger), bold=is_best), dagger


def _reference_rows(results: Results, header: list[str], n_label: int) -> tuple[list[TRow], list[dict]]:
    """A row per known reference level (chance, a task's own baseline), after the runs' rows; never bold."""
    rows, records = [], []
    for kind, label in REFERENCES.items():
        levels = {m.column: results.reference(kind, m) for m in results.metrics}
        if all(v is None for v in levels.values()):
            continue
        lead = [TCell([label])] + [TCell([""]) for _ in range(n_label - 1)]
        rows.append(TRow(lead + [TCell([fmt(m, levels[m.column])] if levels[m.column] is not None else ["—"])
                                 for m in results.metrics], kind="reference"))
        record = {header[0]: label, "row": kind, "status": "", "reason": ""}
        records.append(record | {m.label: scale(m, v) for m in results.metrics
                                 if (v := levels[m.column]) is not None})
    return rows, records


def _best(results: Results, entries: list[_Entry]) -> tuple[dict[str, st.Stat], str]:
    """The best value of each column (as printed: values that read the same are equally best, and all of them are
    bold, a full tie too), and the note when Text PPL has none (`ppl_far`)."""
    best: dict[str, st.Stat] = {}
    for m in results.metrics:
        scored = [e.stats.get(m.column) for e in entries if not e.status and e.stats.get(m.column)]
        if scored:
            best[m.column] = (min if m.lower_better else max)(scored, key=lambda s: s.mean)
    far = ppl_far(results, best.get(PPL))
    if far:
        best.pop(PPL)   # the lowest of values all far above the LM's own is no "best"
    return best, far


def make_table(results: Results, entries: list[_Entry], axes: list[str], meta: ReportMeta, *, slug: str,
               title: str, caption: str, show_cost: bool, show_measured: bool = False,
               group_labels: bool = False) -> Table:
    """`show_cost`: the connector's parameters and FLOPs; `show_measured`: the training cost measured per cell
    (samples/s, peak memory). A cost column is shown when some row has a value; a row without one gets a dash."""
    rep = results.has_replicates
    cost_cols = [c for c in COST_COLUMNS if (show_measured if c in MEASURED else show_cost)
                 and any(c in e.cost for e in entries)]
    header = ([axis_label(a) for a in axes] or ["Setting"]) + (["n"] if rep else []) + \
        [COST_COLUMNS[c][0] for c in cost_cols]
    n_label = len(header)
    header += [m.label for m in results.metrics]
    b = _baseline_index(entries, axes, meta)
    best, far = _best(results, entries)
    rows, records, any_dagger, any_incomplete = [], [], False, False
    for i, e in enumerate(entries):
        labels = [TCell([v]) for v in e.labels] or [TCell(["all runs"])]
        if e.incomplete:
            labels[0].lines[0] += f" {DDAGGER}"
        if i == b:
            labels[0].lines.append("(baseline)")
        record: dict[str, Any] = {axis_label(a): v for a, v in zip(axes, e.labels)}
        record["row"] = "baseline" if i == b else ("status" if e.status else "")
        record["status"] = e.status or "finished"
        record["reason"] = e.reason
        lead = labels
        n_runs = max((s.n for s in e.stats.values() if s), default=0)
        if rep:
            record["n"] = n_runs
        for c in cost_cols:
            record[COST_COLUMNS[c][0]] = e.cost_values.get(c, math.nan)
        if e.status:
            text = e.status + (f": {e.reason}" if e.reason else "")
            rows.append(TRow(lead + [TCell([text], span=len(header) - len(lead))],
                             kind="failed" if e.status.startswith("failed") else "missing"))
            records.append(record)
            continue
        cells = lead + ([TCell([str(n_runs)])] if rep else []) + [TCell([e.cost.get(c, "—")]) for c in cost_cols]
        any_incomplete |= bool(e.incomplete)
        base_stats = entries[b].stats if b is not None else {}
        for m in results.metrics:
            cell, dagger = _score_cell(m, e.stats.get(m.column), best.get(m.column), base_stats.get(m.column),
                                       i == b, rep, record)
            cells.append(cell)
            any_dagger |= dagger
        rows.append(TRow(cells, kind="baseline" if i == b else "row"))
        records.append(record)
    ref_rows, ref_records = _reference_rows(results, header, n_label)
    rows += ref_rows
    records += ref_records
    notes = []
    if any(c in MEASURED for c in cost_cols):
        notes.append(measured_note(results, entries, cost_cols))
    if any_dagger:
        notes.append(NOISE_NOTE)
    if far:
        notes.append(far)
    if any_incomplete:
        notes.append(f"{DDAGGER} averaged over fewer settings than a complete row, because some of its cells "
                     "failed or are missing (see the full table): compare it with care.")
    if b is None and any(not e.status for e in entries):
        notes.append("No deltas: the baseline setting " + str(meta.baseline) + " has no finished run.")
    return Table(slug, title, caption, header, rows, n_label, notes, pd.DataFrame.from_records(records),
                 group_labels, max(1, len(axes)))


def measured_note(results: Results, entries: list[_Entry], cost_cols: list[str]) -> str:
    """What the measured cost columns mean, how many processes trained, and why a dash."""
    parts = []
    if "cost/samples_per_s" in cost_cols:
        parts.append("Samples/s: training samples per second, every process of the cell together (a range: the "
                     "lowest and highest of the runs pooled in the row)")
    if "cost/peak_memory_gib" in cost_cols:
        parts.append("Peak mem: peak memory of the first process (CUDA max allocated, or peak RSS on the CPU)")
    if "cost/train_flops" in cost_cols:
        parts.append("Train FLOPs: one training step counted on the cell's first batch (matrix products and "
                     "attention, forward and backward, the encoder included) times its steps")
    runs = results.runs
    if PROCESSES in runs.columns:
        procs = sorted({int(p) for p in pd.to_numeric(runs[PROCESSES], errors="coerce").dropna()})
        if len(procs) > 1:
            parts.append(f"processes per cell differ ({', '.join(map(str, procs))}): compare samples/s only "
                         "between runs on the same number of processes")
        elif procs:
            parts.append(f"{procs[0]} process{'es' * (procs[0] > 1)} per cell")
    if any(c not in e.cost for e in entries if not e.status for c in cost_cols if c in MEASURED):
        parts.append("— not logged (runs made before the cost metrics)")
    return "; ".join(parts) + "."


def quoted(values: list[str]) -> list[str]:
    """Values that hold spaces (data mixtures) in quotes, so that a list of them reads unambiguously."""
    return [f"“{v}”" if " " in v else v for v in values]


PPL_NOTE = ("Text PPL ↓: perplexity of the LLM on held-out world text (its text-only ability after multimodal "
            "training); lower is better, so its bold value is the lowest, unless every value is far above the LM's "
            "own before multimodal training. In its column the chance row is a uniform guess over the LLM's "
            "vocabulary (the vocabulary's size) and the task-baseline row the LM's own held-out perplexity before "
            "multimodal training (llm/heldout_ppl), where logged.")
PPL_FAR = 2.0   # the lowest Text PPL is not bold when it is more than this many times the LM's own


def ppl_far(results: Results, best: st.Stat | None) -> str:
    """A note when even the lowest Text PPL is more than PPL_FAR times the LM's own before multimodal training
    (so none is bold); "" otherwise."""
    own = next((results.reference("baseline", m) for m in results.metrics if m.column == PPL), None)
    if best is None or own is None or best.mean <= PPL_FAR * own:
        return ""
    return (f"Text PPL: no value is bold: the lowest, {_raw(best.mean)}, is {best.mean / own:,.0f} times the LM's "
            f"own {_raw(own)} before multimodal training: every setting lost the LM's text ability.")


def reading(results: Results, baseline_text: str, avg: bool = True) -> str:
    """The caption's 'how to read the numbers' sentence."""
    rep = "mean ± sd over seeds (n runs); " if results.has_replicates else ""
    ci = "[95% interval: mean ± 1.96 se]; " if results.has_ci or results.has_replicates else ""
    ppl = f" {PPL_NOTE}" if results.has_perplexity else ""
    mean = "Avg: mean of the score columns; " if avg else ""
    refs = [label.lower() for kind, label in REFERENCES.items()
            if any(results.reference(kind, m) is not None for m in results.metrics)]
    ref = (f" Last row{'s' * (len(refs) > 1)}: {' and '.join(refs)} ({reference_sources(results)})." if refs else "")
    return (f"Scores in %: {rep}{ci}Δ in points against the baseline ({baseline_text}); {mean}"
            f"bold: best per column, every tie included.{ppl}{ref}")


def reference_sources(results: Results) -> str:
    """Where the chance and baseline levels come from: 'TextVQA: 1 / 12 world words; VQA: logged'."""
    parts = []
    for kind in REFERENCES:
        for m in results.score_metrics:
            if m.qtype or results.reference(kind, m) is None:
                continue
            note = results.reference_notes.get(f"{kind}/{m.task}", "as the runs recorded it")
            parts.append(f"{kind} {task_label(m.task)}: {note}")
    return "; ".join(dict.fromkeys(parts))


def baseline_text(entries: list[_Entry], axes: list[str], meta: ReportMeta) -> str:
    b = _baseline_index(entries, axes, meta)
    if b is None:
        return "none"
    return ", ".join(f"{axis_label(a)} = {v}" for a, v in zip(axes, entries[b].labels)) or "first row"


def axis_table(results: Results, axis: str, meta: ReportMeta) -> Table:
    entries = marginal_entries(results, axis)
    others = [a for a in results.axes if a != axis]
    b = _baseline_index(entries, [axis], meta)
    base_text = f"{axis_label(axis)} = {entries[b].labels[0]}" if b is not None else "none"
    i = results.axes.index(axis)
    every = set(results.runs["_key"])
    rests, unmatched = matched.matched_rests(results, axis, every)
    if others and unmatched:
        over = "; ".join(", ".join(f"{a} = {v}" for a, v in zip(others, r)) for r in rests)
        how = (f"Matched cells only: each row is the equal-weight mean over the settings of the other swept keys "
               f"that every value has ({over}). ")
    elif others:
        over = "; ".join(f"{a}: {', '.join(quoted(results.values[a]))}" for a in others)
        how = f"Each row is the equal-weight mean over every setting of the other swept axes ({over}). "
    else:
        how = ""
    caption = (f"Effect of {axis_label(axis).lower()} ({axis}). {how}{reading(results, base_text)} "
               f"{_fixed_text(meta.fixed)}").strip()
    show_cost = axis.startswith("connector.") or axis == "encoder.resolution"
    table = make_table(results, entries, [axis], meta, slug=axis.replace(".", "-"),
                       title=f"{axis_label(axis)}", caption=caption, show_cost=show_cost, show_measured=True)
    if unmatched:
        cells = "; ".join(", ".join(f"{a} = {v}" for a, v in zip(results.axes, k)) for k in unmatched)
        values = sorted({k[i] for k in unmatched} - {k[i] for k in every if matched.rest(k, i) in rests})
        alone = f" {', '.join(values)} has no matched partner at all." if values else ""
        table.footnotes.append(f"Left out, no matched partner (no cell equal in every other key for each value "
                               f"of {axis}): {cells}.{alone} They are in the full table.")
    return table


def full_table(results: Results, meta: ReportMeta) -> Table:
    entries = full_entries(results)
    base_text = baseline_text(entries, results.axes, meta)
    caption = (f"Every setting of the grid ({', '.join(results.axes) or 'no swept axes'}), seeds pooled; "
               f"failed and missing cells keep their row. "
               f"{reading(results, base_text)} {_fixed_text(meta.fixed)}").strip()
    return make_table(results, entries, results.axes, meta, slug="full", title="All settings",
                      caption=caption, show_cost=True, show_measured=True, group_labels=True)


def runs_table(results: Results) -> Table:
    """Every run: id, seed, settings, status, wall time, average score, failure reason."""
    runs = results.runs
    has_seed = runs["seed"].notna().any()
    header = ["Cell"] + (["Seed"] if has_seed else []) + [axis_label(a) for a in results.axes] + \
        ["Status", "Wall time", "Avg", "Reason"]
    rows, records = [], []
    for key in _ordered_keys(results):
        for _, r in runs[runs["_key"] == key].iterrows():
            status = {"finished": "finished", "failed": r["_status_text"]}.get(r["_group"],
                                                                            f"missing ({r['_status_text']})")
            reason = short_reason(r["failure"]) if r["_group"] == "failed" else ""
            avg = r[AVG]
            wall = r.get("wall_s", math.nan)
            cells = [str(r["cell_id"])] + ([str(int(r["seed"])) if pd.notna(r["seed"]) else "—"] if has_seed else [])
            cells += list(key) + [status, human_seconds(wall) if pd.notna(wall) else "—",
                                  pct(avg) if pd.notna(avg) else "—", reason]
            rows.append(TRow([TCell([c]) for c in cells],
                             kind={"failed": "failed", "missing": "missing"}.get(r["_group"], "row")))
            records.append(dict(zip(header, cells))
                           | {"Wall time": wall, "Avg": round(100 * avg, 4) if pd.notna(avg) else math.nan})
    caption = ("Every run of the sweep with its cell id (the hash of its settings), seed, status and wall time; "
               "failure reasons are the last line of the error.")
    right = [j for j, h in enumerate(header) if h in ("Seed", "Wall time", "Avg")]
    right += [header.index(axis_label(a)) for a in results.axes if results.numeric(a)]
    return Table("runs", "Runs", caption, header, rows, 1 + has_seed, [], pd.DataFrame.from_records(records),
                 right=right)
