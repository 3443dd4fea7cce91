"""Did the encoder's pre-training work? One row per encoder spec with its held-out retrieval figures, and, for
encoders pre-trained to read, the share of held-out words their reading head names at each trained resolution.

The zoo's tiny encoders are pre-trained here (CLIP: Radford et al., 2021; SigLIP: Zhai et al., 2023; AIM:
El-Nouby et al., 2024) and log their held-out image->text retrieval top-1 (zero-shot and with a linear probe)
next to chance (1 / candidates) as `encoder/<name>`. An encoder near chance makes every MLLM number after it
meaningless, so this table comes first.
"""
from __future__ import annotations

import math
import re

import pandas as pd

from .meta import ReportMeta
from .results import ENCODER_PREFIX, Results
from .tables import Table, TCell, TRow, pct

# encoder/<name> -> (column header, kind): "pct" top-1 in %, with its multiple of chance; "int"; "loss"
COLUMNS = {
    "zero_shot_i2t_top1": ("Zero-shot top-1", "pct"),
    "probe_i2t_top1": ("Probe top-1", "pct"),
    "chance": ("Chance", "chance"),
    "zero_shot_i2t_top1_pool32": ("Zero-shot top-1, pools of 32", "pct32"),
    "probe_i2t_top1_pool32": ("Probe top-1, pools of 32", "pct32"),
    "chance_pool32": ("Chance, pools of 32", "chance"),
    "n_heldout": ("Held-out pairs", "int"),
}
READING = re.compile(r"read_top1_(\d+)_(large|small)$")  # encoder/read_top1_<px>_<word size>


def _spec(results: Results, row: pd.Series, meta: ReportMeta) -> str:
    for source in (row, meta.fixed):
        value = source.get("encoder.name") if hasattr(source, "get") else None
        if isinstance(value, str) and value:
            return value
    return "encoder"


def _cell(kind: str, x: float, chance: float | None, chance32: float | None) -> list[str]:
    if kind == "int":
        return [f"{round(x)}"]
    if kind == "chance":
        return [pct(x)]
    base = chance if kind == "pct" else chance32
    lines = [pct(x)]
    if base and base > 0:
        lines.append(f"{x / base:.0f}× chance")
    return lines


def encoder_table(results: Results, meta: ReportMeta) -> Table | None:
    """None when no run logged `encoder/*` figures (HF / timm encoders are pre-trained elsewhere)."""
    if not results.encoder_metrics:
        return None
    runs = results.runs
    by_spec: dict[str, pd.Series] = {}
    for _, row in runs.iterrows():
        if any(pd.notna(row.get(c)) for c in results.encoder_metrics):
            by_spec.setdefault(_spec(results, row, meta), row)
    names = [c.removeprefix(ENCODER_PREFIX) for c in results.encoder_metrics]
    shown = [n for n in COLUMNS if n in names]
    loss = "loss_first" in names and "loss_last" in names
    read_px = sorted({int(m.group(1)) for n in names if (m := READING.match(n))})
    header = (["Encoder"] + [COLUMNS[n][0] for n in shown] + [f"Reads at {px} px, large / small" for px in read_px]
              + (["Pre-training loss"] if loss else []))
    steps = "steps" in names
    rows, records = [], []
    for spec, row in by_spec.items():
        value = {n: float(row[ENCODER_PREFIX + n]) for n in names if pd.notna(row.get(ENCODER_PREFIX + n))}
        cells, record = [TCell([spec])], {"Encoder": spec}
        for n in shown:
            x = value.get(n, math.nan)
            kind = COLUMNS[n][1]
            cells.append(TCell(["—"] if math.isnan(x) else _cell(kind, x, value.get("chance"),
                                                                  value.get("chance_pool32"))))
            record[COLUMNS[n][0]] = x if kind == "int" or math.isnan(x) else round(100 * x, 4)
        for px in read_px:
            large, small = (value.get(f"read_top1_{px}_{size}", math.nan) for size in ("large", "small"))
            cells.append(TCell([" / ".join("—" if math.isnan(x) else pct(x) for x in (large, small))]))
            record[f"read {px} px large"], record[f"read {px} px small"] = 100 * large, 100 * small
        if loss:   # an encoder that was not pre-trained (zoo:random-s) has no loss
            first, last = value.get("loss_first", math.nan), value.get("loss_last", math.nan)
            trained = not (math.isnan(first) or math.isnan(last))
            cells.append(TCell(([f"{first:.2f} → {last:.2f}"] if trained else ["—"])
                               + ([f"{value['steps']:.0f} steps"] if steps and "steps" in value else [])))
            record["loss_first"], record["loss_last"] = first, last
        rows.append(TRow(cells))
        records.append(record)
    others = sorted({str(v) for v in runs.get("encoder.name", pd.Series(dtype=str)).dropna()} - set(by_spec))
    fusions = [name for name in others if "+" in name]   # fused encoders (`a+b`): their encoders' rows are theirs
    others = [name for name in others if name not in fusions]
    caption = ("Pre-training of the encoders, measured before any MLLM training on held-out image-caption pairs of "
               "the embedded world: top-1 accuracy in % of retrieving an image's caption (image→text) among all "
               "held-out captions" + (", and among 32 (pools of 32)" if any("pool32" in n for n in shown) else "")
               + ". Zero-shot: the contrastive embeddings; probe: a "
               "linear map from image features to caption words, fitted on other pairs. Chance: a random guess "
               "under the same rule; \"× chance\": the accuracy divided by it. Far above chance: the "
               "encoder sees what the questions ask about."
               + (" Reads: % of held-out images whose word the encoder's reading head names, for large and small "
                  "words, at each resolution it was pre-trained at (chance: one over the world's words)."
                  if read_px else "")
               + (f" No pre-training figures for {', '.join(others)} (pre-trained elsewhere)." if others else "")
               + (f" Fused encoders ({', '.join(fusions)}) concatenate the features of the encoders they join, "
                  "each pre-trained on its own (their rows)." if fusions else ""))
    return Table("encoders", "Encoder pre-training", caption, header, rows, 1, [],
                 pd.DataFrame.from_records(records), n_axes=1)
