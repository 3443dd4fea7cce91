"""`build_report`: results frame + loss curves + `ReportMeta` -> PDF, HTML, tables (CSV/MD/LaTeX), figures."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from . import formats, html, pdf, plots
from .by_type import type_tables
from .document import assemble
from .encoders import encoder_table
from .examples import Loader, example_sets
from .meta import ReportMeta, ReportPaths, TablePaths
from .names import sanitise
from .results import load
from .tables import axis_table, full_table, runs_table


def build_report(frame: pd.DataFrame, curves: dict, meta: ReportMeta, out_dir: Path,
                 predictions: Loader | Mapping | None = None) -> ReportPaths:
    """Write the report of one grid into `out_dir` and return every path written.

    `predictions`: each run's logged sample of predictions, as a mapping or a loader `cell_id -> DataFrame |
    None` (columns task, shots, id, image, question, prediction, references, correct, type); only the best and
    the worst cell's are read. Files are named after the sanitised grid name `<stem>`: `<stem>_report.pdf`,
    `<stem>_report.html`, `<stem>_table_<slug>.{csv,md,tex}` (one per swept axis, `encoders`, `types-<task>`,
    `full`, `runs`) and `<stem>_fig_<kind>.png` (tokens, resolution, mixture, cost, loss: only those the grid
    has axes for).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = sanitise(meta.grid_name)
    results = load(frame, meta.swept_axes)
    axis_tables = [axis_table(results, a, meta) for a in results.axes]
    full, runs = full_table(results, meta), runs_table(results)
    encoders, by_type = encoder_table(results, meta), type_tables(results, meta)
    paths = ReportPaths(pdf=out_dir / f"{stem}_report.pdf", html=out_dir / f"{stem}_report.html")
    for t in [encoders] * (encoders is not None) + axis_tables + by_type + [full, runs]:
        base = out_dir / f"{stem}_table_{sanitise(t.slug, 'table')}"
        tp = TablePaths(base.with_suffix(".csv"), base.with_suffix(".md"), base.with_suffix(".tex"))
        tp.csv.write_text(formats.to_csv(t), encoding="utf-8")
        tp.md.write_text(formats.to_markdown(t), encoding="utf-8")
        tp.tex.write_text(formats.to_latex(t), encoding="utf-8")
        paths.tables[t.slug] = tp
    figures = []
    for p in plots.all_plots(results, curves or {}):
        path = plots.save(p, out_dir / f"{stem}_fig_{p.slug}.png")
        paths.figures[p.slug] = path
        figures.append((path, p.caption))
    doc = assemble(results, meta, axis_tables, full, runs, figures, encoders, by_type,
                   example_sets(results, predictions))
    pdf.render(doc, paths.pdf)
    html.render(doc, paths.html)
    return paths
