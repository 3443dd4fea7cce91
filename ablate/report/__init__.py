"""MM1-style reports from a results frame: tables, figures, PDF, HTML, CSV, Markdown, LaTeX.

Entry point: `build_report(frame, curves, meta, out_dir) -> ReportPaths` (see docs/reports.md).
"""
from .meta import ReportMeta, ReportPaths, TablePaths

__all__ = ["ReportMeta", "ReportPaths", "TablePaths", "build_report"]


def __getattr__(name):
    if name == "build_report":  # lazy: matplotlib and fpdf2 load only when a report is built
        from .build import build_report

        return build_report
    raise AttributeError(name)
