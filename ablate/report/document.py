"""The report as an ordered list of blocks, so that the PDF and the HTML say exactly the same thing."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .environment import differences, machines
from .examples import ExampleSet
from .findings import METHOD, PER_SEED, findings
from .meta import ReportMeta
from .names import axis_label, fixed_items, value_label
from .results import Results
from .stats import INTERVAL
from .tables import Table, quoted, short_reason
from .units import human_seconds


@dataclass
class Heading:
    text: str
    level: int = 1


@dataclass
class Para:
    text: str
    small: bool = False


@dataclass
class KeyValues:
    rows: list[tuple[str, str]]


@dataclass
class Bullets:
    items: list[str]


@dataclass
class TableBlock:
    table: Table
    number: int


@dataclass
class FigureBlock:
    path: Path
    caption: str
    number: int


@dataclass
class ExamplesBlock:
    examples: ExampleSet


@dataclass
class Document:
    title: str
    subtitle: str
    footer: str
    blocks: list = field(default_factory=list)
    cover_title: str = "Summary"  # the first bookmark: the cover page and its sections


def _settings(results: Results, row: pd.Series) -> str:
    parts = [f"{axis_label(a)} = {row[f'_label:{a}']}" for a in results.axes]
    if pd.notna(row["seed"]):
        parts.append(f"seed {int(row['seed'])}")
    return ", ".join(parts)


def _seconds(runs: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(runs[col], errors="coerce").dropna() if col in runs.columns else pd.Series(dtype=float)


def _per_cell(runs: pd.DataFrame) -> str:
    """Median / min / max of the cells' wall times, and the median split into training and evaluation."""
    wall = _seconds(runs, "wall_s")
    if not len(wall):
        return "not recorded"
    text = (f"median {human_seconds(wall.median())}, min {human_seconds(wall.min())}, "
            f"max {human_seconds(wall.max())} over {len(wall)} cells")
    train, evaluate = _seconds(runs, "time/train_s"), _seconds(runs, "time/eval_s")
    if len(train) and len(evaluate):
        text += (f" (median training {human_seconds(train.median())}, evaluation "
                 f"{human_seconds(evaluate.median())}; the rest is building the model)")
    return text


BACKBONES = ("encoder", "llm")  # `<part>/build_s`: a zoo backbone's pre-training time, `<part>.name` its spec


def pretraining(runs: pd.DataFrame, meta: ReportMeta) -> list[tuple[str, float, bool]]:
    """(spec, seconds, shipped) of every zoo backbone whose pre-training time the frame holds (`encoder/build_s`;
    shipped: the weights came with ablate, so that time was the maintainers', not this run's)."""
    out = {}
    for part in BACKBONES:
        col = f"{part}/build_s"
        if col not in runs.columns:
            continue
        specs = runs[f"{part}.name"] if f"{part}.name" in runs.columns else \
            pd.Series(meta.fixed.get(f"{part}.name", part), index=runs.index)
        shipped = pd.to_numeric(runs.get(f"{part}/shipped", pd.Series(0.0, index=runs.index)), errors="coerce")
        for spec, secs, ship in zip(specs, pd.to_numeric(runs[col], errors="coerce"), shipped):
            if pd.notna(secs):
                out.setdefault(str(spec), (float(secs), bool(ship == 1)))
    return [(spec, secs, ship) for spec, (secs, ship) in out.items()]


def _total(runs: pd.DataFrame, meta: ReportMeta) -> str:
    """Compute (the sum over cells) and, when known, elapsed time from the first start to the last end; zoo
    backbone pre-training is not in either (it runs once, before the cells, and is cached)."""
    wall = _seconds(runs, "wall_s")
    total = meta.total_wall_s if meta.total_wall_s is not None else (wall.sum() if len(wall) else None)
    if total is None:
        return "—"
    text = f"{human_seconds(total)} summed over cells"
    if meta.elapsed_s is not None:
        text += f"; {human_seconds(meta.elapsed_s)} from the first cell's start to the last one's end"
    return text + " (excluding backbone pre-training)"


def _pretraining_text(runs: pd.DataFrame, meta: ReportMeta) -> str | None:
    built = pretraining(runs, meta)
    if not built:
        return None
    zoo = sorted({str(meta.fixed.get(f"{p}.name", "")) for p in BACKBONES} | set(
        str(v) for p in BACKBONES if f"{p}.name" in runs.columns for v in runs[f"{p}.name"].dropna()))
    unknown = [z for z in zoo if z.startswith("zoo:") and z not in {spec for spec, _, _ in built}]
    text = ", ".join(f"{spec} {human_seconds(secs)}" + (" (shipped with ablate: not run here)" if ship else "")
                     for spec, secs, ship in built)
    text += (f" (not recorded for {', '.join(unknown)})" if unknown else "")
    return text + "; done once, when a backbone is first used, and cached for later grids"


def fixed_rows(fixed: dict) -> list[tuple[str, str]]:
    """Fixed settings grouped by section, one row each: ("train", "steps = 60 · lr = 0.002 · ..."); lists read
    `a, b`, empty settings are left out."""
    groups: dict[str, list[str]] = {}
    for key, text in fixed_items(fixed):
        section, _, rest = key.partition(".")
        groups.setdefault(section if rest else "", []).append(f"{rest or key} = {text}")
    return [(section or "other", " · ".join(items)) for section, items in groups.items()]


def held_equal(results: Results, meta: ReportMeta) -> str | None:
    """What every cell trained for: a `train.budget` (samples, tokens or FLOPs) or a number of steps; None when it
    is swept."""
    fixed = meta.fixed or {}
    budget = [(k.rsplit(".", 1)[1], v) for k, v in fixed.items() if k.startswith("train.budget.") and v is not None]
    if budget:
        quantity, amount = budget[0]
        return (f"training {quantity} (train.budget: {value_label(amount)} per cell); the steps each cell trained "
                "for follow from it")
    if any(a == "train.steps" or a.startswith("train.budget") for a in results.axes):
        return None
    steps = fixed.get("train.steps")
    return f"training steps ({steps} per cell)" if steps is not None else None


def cover(results: Results, meta: ReportMeta) -> list:
    runs = results.runs
    n = runs["_group"].value_counts()
    running = int((runs["_status_text"] == "running").sum())
    missing = int(n.get("missing", 0))
    counts = (f"{len(runs)} cells: {int(n.get('finished', 0))} finished, {int(n.get('failed', 0))} failed, "
              f"{missing} missing ({running} running, {missing - running} pending)")
    per_cell = _per_cell(runs)
    axes = [f"{a} ({len(results.values[a])}): {', '.join(quoted(results.values[a]))}" for a in results.axes]
    seeds = sorted(int(s) for s in runs["seed"].dropna().unique())
    if len(seeds) > 1:
        axes.append(f"seeds ({len(seeds)}, replicates): {', '.join(map(str, seeds))}")
    base = ", ".join(f"{a} = {value_label(v)}" for a, v in (meta.baseline or {}).items()) or \
        "first row of each table"
    ran_on = machines(runs)
    rows = [("Grid", meta.grid_name), ("Grid file", str(meta.grid_file) or "—"), ("Date", meta.date_text or "—"),
            ("Code version", meta.git_commit or "—")] + ([("Cells ran on", ran_on)] if ran_on else []) + [
            ("Report built on" if ran_on else "Machine", meta.device or "—"),
            ("Total wall time", _total(runs, meta))] + \
        ([("Backbone pre-training", pre)] if (pre := _pretraining_text(runs, meta)) else []) + [
            ("Wall time per cell", per_cell), ("Cells", counts), ("Swept axes", "; ".join(axes) or "none"),
            ("Baseline", base)] + ([("Held equal", held)] if (held := held_equal(results, meta)) else [])
    blocks: list = [KeyValues(rows)]
    failed = runs[runs["_group"] == "failed"]
    if len(failed):
        blocks += [Heading("Failed cells", 2),
                   Bullets([f"{r['cell_id']} ({_settings(results, r)}): {short_reason(r['failure'], 300)}"
                            for _, r in failed.iterrows()])]
    todo = runs[runs["_group"] == "missing"]
    if len(todo):
        blocks += [Heading("Missing cells", 2),
                   Bullets([f"{r['cell_id']} ({_settings(results, r)}): {r['_status_text']}"
                            for _, r in todo.iterrows()])]
    if meta.fixed:
        blocks += [Heading("Fixed settings", 2), KeyValues(fixed_rows(meta.fixed))]
    return blocks


HOW_TO_READ = (
    "Each table compares the values of one swept axis; every other swept axis is averaged out with equal weight "
    "per setting (the caption says over what). Scores are in % with one decimal; the best value of each column "
    "is bold, and so is every value that ties with it. Δ is the signed difference to the baseline row in "
    "percentage points. With several seeds a value reads mean ± standard deviation over seeds, n runs. [a, b] is "
    f"a {INTERVAL}; the figures' error bars are the same interval. A dagger (†) marks a value whose gap to the "
    "best of its column is inside the noise: do not read it as a loss. Chance (a random guess) and a task's own "
    "baseline, where known, are the last rows of a table and grey lines on the figures. Failed and missing cells "
    "keep their rows, with the reason, instead of scores. The appendix has every setting and every run.")
PPL_READ = (" Text PPL ↓ is the perplexity of the LLM on held-out text: lower is better, and its bold value is the "
            "lowest; it shows whether multimodal training cost the LLM its text-only ability.")


def findings_blocks(results: Results, meta: ReportMeta) -> list:
    """The "Findings" section: the grid's lessons in a handful of lines (`findings`); none without any."""
    lines, left_out = findings(results, meta)
    if not lines:
        return []
    more = f" {left_out} more, inside the noise or smaller, are in the tables." if left_out else ""
    method = METHOD + (PER_SEED if results.has_replicates else "")
    return [Heading("Findings", 2), Bullets(lines), Para(method + more, small=True)]


def assemble(results: Results, meta: ReportMeta, axis_tables: list[Table], full: Table, runs: Table,
             figures: list[tuple[Path, str]], encoders: Table | None = None, by_type: list[Table] | None = None,
             examples: list[ExampleSet] | None = None, empty: Table | None = None,
             image: list[Table] | None = None) -> Document:
    """Cover, findings, encoder pre-training, results by axis, by question type, empty predictions, figures, sample
    predictions, appendix."""
    doc = Document(title=meta.grid_name, subtitle="Ablation report",
                   footer=f"{meta.grid_name} · {meta.git_commit or 'unknown commit'}")
    b = doc.blocks
    b += cover(results, meta)
    b += findings_blocks(results, meta)
    b += [Heading("How to read this report", 2), Para(HOW_TO_READ + (PPL_READ if results.has_perplexity else ""))]
    number = 0
    if encoders is not None:
        number += 1
        b += [Heading("Backbones"), TableBlock(encoders, number)]
    if axis_tables:
        b.append(Heading("Results by axis"))
        for t in axis_tables:
            number += 1
            b.append(TableBlock(t, number))
    if image:
        b.append(Heading("Does the image matter?"))
        for t in image:
            number += 1
            b.append(TableBlock(t, number))
    if by_type:
        b.append(Heading("Results by question type"))
        for t in by_type:
            number += 1
            b.append(TableBlock(t, number))
    if empty is not None:
        number += 1
        b += [Heading("Empty predictions"), TableBlock(empty, number)]
    if figures:
        b.append(Heading("Figures"))
        for i, (path, caption) in enumerate(figures, 1):
            b.append(FigureBlock(path, caption, i))
    if examples:
        b.append(Heading("Sample predictions"))
        b += [ExamplesBlock(e) for e in examples]
    b.append(Heading("Appendix"))
    for t in (full, runs):
        number += 1
        b.append(TableBlock(t, number))
    b += environment_blocks(results)
    return doc


def environment_blocks(results: Results) -> list:
    """The appendix's "Environments": what differed between the cells' run records (versions, commit, machine,
    threads, data), or that nothing did; none when no run has a record."""
    differ, same = differences(results.runs)
    if not differ and not same:
        return []
    blocks: list = [Heading("Environments", 2)]
    if differ:
        blocks += [Para("What differed between the cells' run records (`ablate show GRID CELL` prints a cell's "
                        "whole record). Scores of cells that differ here differ for these reasons too, not only "
                        "for their settings:"), Bullets(differ)]
    else:
        blocks.append(Para("Every cell's run record agrees on versions, commit, machine, threads and data files."))
    if same:
        blocks.append(Para("Shared by every cell: " + "; ".join(same) + ".", small=True))
    return blocks
