"""Where the cells ran: the machines named on the cover, and what differed between the cells' environments.

Each run carries its run record's one-line summaries as `ablate.env.*` tags (`ablate.record`: library versions,
git commit and dirty flag, machine, CPU SIMD flags, threads, GPUs and driver, a digest over its data and question
files); the results frame holds them as columns of the same names. A score difference between two cells that ran
on different machines, commits or data is not only the difference of their settings.
"""
from __future__ import annotations

import pandas as pd

ENV = "ablate.env."
LABELS = {"machine": "machine", "commit": "git commit", "dirty": "uncommitted changes", "torch": "torch",
          "transformers": "transformers", "lmms-eval": "lmms-eval", "mlflow": "mlflow", "ablate": "ablate",
          "python": "Python", "cpu_simd": "CPU SIMD flags", "threads": "torch threads", "gpus": "GPUs",
          "gpu_driver": "GPU driver", "data": "data and question files (digest)", "host": "host",
          "evaluated_on": "evaluated again on", "evaluated_at_commit": "evaluated again at commit"}
SHOWN = 4  # cell ids listed per value; the rest are counted


def _columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if str(c).startswith(ENV)]


def machines(runs: pd.DataFrame) -> str | None:
    """`AMD EPYC (avx2; 2 cores, 2 threads), CPU only (8 cells)`, one entry per machine; None without records."""
    col = f"{ENV}machine"
    if col not in runs.columns or not runs[col].notna().any():
        return None
    counts = runs[col].dropna().astype(str).value_counts(sort=False)
    unknown = int(runs[col].isna().sum())
    text = "; ".join(f"{m} ({n} cell{'s' * (n != 1)})" for m, n in counts.items())
    return text + (f"; not recorded for {unknown} cells" if unknown else "")


def differences(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(what differed: one line per record field with several values, naming the cells of each; what every
    recorded cell shared: `field value`)."""
    recorded = runs[runs[_columns(runs)].notna().any(axis=1)] if _columns(runs) else runs.iloc[:0]
    differ, same = [], []
    for col in _columns(runs):
        key = col.removeprefix(ENV)
        values = recorded[col].fillna("not recorded").astype(str)
        label = LABELS.get(key, key)
        if values.nunique() <= 1:
            if len(values) and key in ("machine", "commit", "torch", "transformers", "lmms-eval", "data"):
                same.append(f"{label} {values.iloc[0]}")
            continue
        parts = []
        for value, cells in recorded.groupby(values, sort=False)["cell_id"]:
            ids = [str(c) for c in cells]
            listed = ", ".join(ids[:SHOWN]) + (f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else "")
            parts.append(f"{value} ({listed})")
        differ.append(f"{label}: " + "; ".join(parts))
    return differ, same
