"""What a report is about (`ReportMeta`) and what it wrote (`ReportPaths`).

The report never reads the training code's memory: it gets a results frame (docs/architecture.md, "Results
frame"), loss curves and this description of the run.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ReportMeta:
    """Facts about the sweep that the results frame does not carry.

    `swept_axes` are dotted keys (`connector.name`); a seed axis (`seed`, `train.seed`) is treated as replicates,
    not as a table axis. `total_wall_s` is the sum of the cells' wall times, `elapsed_s` the time from the first
    cell's start to the last one's end (shorter with parallel workers, longer across resumes); neither includes
    the zoo backbones' pre-training (the frame's `encoder/build_s`). `baseline` maps axes to the values of the
    baseline row (missing axes: first value); None means the first row of every table. `fixed` (dotted keys):
    the grid's fixed settings, printed on the cover and read for the embedded tasks' chance levels.
    """

    grid_name: str
    grid_file: str | Path = ""
    date: str | _dt.date | _dt.datetime = ""
    git_commit: str = ""
    device: str = ""
    total_wall_s: float | None = None  # compute: the cells' wall times summed (None: summed from the frame)
    elapsed_s: float | None = None  # the sweep's elapsed time, first cell start to last cell end
    swept_axes: list[str] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None

    @property
    def date_text(self) -> str:
        if isinstance(self.date, _dt.datetime):
            return self.date.strftime("%Y-%m-%d %H:%M")
        if isinstance(self.date, _dt.date):
            return self.date.isoformat()
        return str(self.date)


@dataclass
class TablePaths:
    csv: Path
    md: Path
    tex: Path


@dataclass
class ReportPaths:
    """Every file `build_report` wrote; `tables` and `figures` are keyed by a short slug (e.g. `connector-name`)."""

    pdf: Path
    html: Path
    tables: dict[str, TablePaths] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)

    def all(self) -> list[Path]:
        out = [self.pdf, self.html]
        for t in self.tables.values():
            out += [t.csv, t.md, t.tex]
        return out + list(self.figures.values())
