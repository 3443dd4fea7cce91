"""`build_report`: results frame + loss curves + `ReportMeta` -> PDF, HTML, tables (CSV/MD/LaTeX), figures.

The report is written atomically: into a temporary sibling folder, which then replaces the previous report in
two renames. A kill or an error while writing leaves the previous report whole (and at worst a hidden
`.<name>.tmp-*` folder, removed by the next report). One process writes a grid's report at a time (a file lock,
`.<name>.lock` next to it): a second writer (`ablate report` twice, `ablate eval` while `ablate run` renders) waits
for the first, so it never removes the folder the first is writing; a killed writer's lock dies with it.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from filelock import FileLock

from . import formats, html, pdf, plots, training
from .by_type import type_tables
from .document import assemble
from .empty import empty_table
from .encoders import encoder_table
from .examples import Loader, example_sets
from .image import answers_table, image_table
from .meta import ReportMeta, ReportPaths, TablePaths
from .names import sanitise
from .results import load
from .tables import axis_table, full_table, runs_table


def build_report(frame: pd.DataFrame, curves: dict, meta: ReportMeta, out_dir: Path,
                 predictions: Loader | Mapping | None = None, score_curves: dict | None = None,
                 questions: Loader | Mapping | None = None) -> ReportPaths:
    """Write the report of one grid into `out_dir` and return every path written.

    `out_dir` is the report's own folder: it is replaced as a whole once the new report is complete (files in it
    that the report does not write are carried over). `predictions`: each run's logged sample of predictions, as
    a mapping or a loader `cell_id -> DataFrame | None` (columns task, shots, id, image, question, prediction,
    references, correct, type); only the best and the worst cell's are read. Files are named after the
    sanitised grid name `<stem>`: `<stem>_report.pdf`, `<stem>_report.html`, `<stem>_table_<slug>.{csv,md,tex}`
    (one per swept axis, `encoders`, `types-<task>`, `empty`, `full`, `runs`) and `<stem>_fig_<kind>.png` (tokens,
    resolution, mixture, cost, loss: only those the grid has axes for; training, from `score_curves`: cell id ->
    {`during/<task>/<k>shot`: [(step, score)]}, the mid-training scores of cells run with `eval.every`).
    `questions`: each run's every answer and score (`questions.json`: task, shots, id, type, prediction, correct),
    read for every finished run: the paired intervals and the answers' spread (`report.image`).
    """
    out_dir = Path(out_dir).absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(out_dir.parent / f".{out_dir.name}.lock"):   # one writer of a grid's report at a time
        _remove_stale(out_dir)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
        try:
            paths = _write(frame, curves, meta, tmp, predictions, score_curves or {}, questions)
            _replace(tmp, out_dir, {p.name for p in paths.all()})
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return _moved(paths, tmp, out_dir)


def _remove_stale(out_dir: Path) -> None:
    """Temporary folders of an earlier report that was killed while writing."""
    for stale in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.old-*"):
        if out_dir.exists():  # killed between the two renames: the old report is back in place already
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.rename(out_dir)


def _replace(new: Path, out_dir: Path, written: set[str]) -> None:
    """`new` becomes `out_dir`; what else `out_dir` held (not a file of the report) moves into `new` first."""
    if not out_dir.exists():
        new.rename(out_dir)
        return
    for entry in out_dir.iterdir():
        if entry.name not in written and not (new / entry.name).exists() and not _report_file(entry.name, written):
            entry.rename(new / entry.name)
    old = out_dir.with_name(f".{out_dir.name}.old-{new.name.rsplit('-', 1)[-1]}")
    out_dir.rename(old)
    new.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _report_file(name: str, written: set[str]) -> bool:
    """A file an earlier report of the same grid wrote (a figure or table this report no longer has)."""
    stems = {w.split("_", 1)[0] for w in written}
    return any(name.startswith(f"{s}_report.") or name.startswith(f"{s}_table_") or name.startswith(f"{s}_fig_")
               for s in stems)


def _moved(paths: ReportPaths, tmp: Path, out_dir: Path) -> ReportPaths:
    def move(p: Path) -> Path:
        return out_dir / p.relative_to(tmp)

    out = ReportPaths(pdf=move(paths.pdf), html=move(paths.html))
    out.tables = {k: TablePaths(move(t.csv), move(t.md), move(t.tex)) for k, t in paths.tables.items()}
    out.figures = {k: move(p) for k, p in paths.figures.items()}
    return out


def _write(frame: pd.DataFrame, curves: dict, meta: ReportMeta, out_dir: Path,
           predictions: Loader | Mapping | None, score_curves: dict,
           questions: Loader | Mapping | None = None) -> ReportPaths:
    stem = sanitise(meta.grid_name)
    results = load(frame, meta.swept_axes, meta.fixed, _every_run(frame, questions))
    axis_tables = [axis_table(results, a, meta) for a in results.axes]
    full, runs = full_table(results, meta), runs_table(results)
    encoders, by_type = encoder_table(results, meta), type_tables(results, meta)
    empty = empty_table(results, meta)
    image = [t for t in (image_table(results, meta), answers_table(results)) if t is not None]
    paths = ReportPaths(pdf=out_dir / f"{stem}_report.pdf", html=out_dir / f"{stem}_report.html")
    for t in [encoders] * (encoders is not None) + axis_tables + image + by_type + [empty] * (empty is not None) + \
            [full, runs]:
        base = out_dir / f"{stem}_table_{sanitise(t.slug, 'table')}"
        tp = TablePaths(base.with_suffix(".csv"), base.with_suffix(".md"), base.with_suffix(".tex"))
        tp.csv.write_text(formats.to_csv(t), encoding="utf-8")
        tp.md.write_text(formats.to_markdown(t), encoding="utf-8")
        tp.tex.write_text(formats.to_latex(t), encoding="utf-8")
        paths.tables[t.slug] = tp
    figures = []
    results.leader_changes = training.leader_changes(results, score_curves)
    over_training = training.score_over_training(results, score_curves)
    for p in plots.all_plots(results, curves or {}) + [over_training] * (over_training is not None):
        path = plots.save(p, out_dir / f"{stem}_fig_{p.slug}.png")
        paths.figures[p.slug] = path
        figures.append((path, p.caption))
    doc = assemble(results, meta, axis_tables, full, runs, figures, encoders, by_type,
                   example_sets(results, predictions), empty, image=image)
    pdf.render(doc, paths.pdf)
    html.render(doc, paths.html)
    return paths


def _every_run(frame: pd.DataFrame, questions: Loader | Mapping | None) -> dict[str, pd.DataFrame]:
    """Each finished run's per-question rows (cell id -> frame), where logged."""
    if questions is None or "cell_id" not in frame.columns:
        return {}
    get = questions.get if isinstance(questions, Mapping) else questions
    done = frame[frame["status"].astype(str).str.upper() == "FINISHED"] if "status" in frame.columns else frame
    out = {}
    for cell_id in done["cell_id"]:
        rows = get(str(cell_id))
        if rows is not None and len(rows):
            out[str(cell_id)] = rows
    return out
