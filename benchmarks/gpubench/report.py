"""The results as markdown: every row, then the headline figures."""
from __future__ import annotations


def markdown(results: dict) -> str:
    meta = results["meta"]
    lines = [f"# ablate GPU benchmark ({meta.get('device')}, {meta.get('date')})", "",
             ", ".join(f"{k}: {v}" for k, v in meta.items()), "", "| part | variant | figures |", "|---|---|---|"]
    for row in results["rows"]:
        figures = ", ".join(f"{k} {v}" for k, v in row.items() if k not in {"part", "name", "losses"})
        lines.append(f"| {row['part']} | {row['name']} | {figures} |")
    return "\n".join(lines) + "\n\n" + summary(results)


SUMMARY = [  # (part, row name starts with, figure, label): the short table printed at the end
    ("step", "+ bf16 frozen encoder", "speedup", "step: optimised / eager speed-up"),
    ("step", "+ bf16 frozen encoder", "mfu", "step: optimised MFU"),
    ("grid", "optimised / eager", "ratio", "grid: optimised / eager wall time"),
    ("cell", "whole cell, speed path off", "samples_s", "whole cell, speed off: samples/s"),
    ("cell", "whole cell, speed path on", "samples_s", "whole cell, speed on: samples/s"),
    ("cell", "on / off", "wall_ratio", "whole cell: on / off wall time"),
    ("cell", "whole cell, speed path on", "peak_gib", "whole cell, speed on: peak GiB"),
    ("dp", "1 process", "samples_s_per_gpu", "dp: samples/s per GPU, 1 process"),
    ("dp", "", "samples_s_per_gpu", "dp: samples/s per GPU, N processes"),
    ("dp", "", "weak_scaling_efficiency", "dp: weak-scaling efficiency"),
    ("dp", "", "warning", "dp: WARNING"),
    ("dp", "ddp:", "peak_gib", "dp: DDP, LLM trained, peak GiB per GPU"),
    ("dp", "fsdp:", "peak_gib", "dp: FSDP2, LLM trained, peak GiB per GPU"),
    ("dp", "ddp:", "samples_s", "dp: DDP, LLM trained, samples/s"),
    ("dp", "fsdp:", "samples_s", "dp: FSDP2, LLM trained, samples/s"),
    ("eval", "generate, bf16 autocast, batch 32", "questions_s", "eval: questions/s (bf16, batch 32)"),
]


def summary(results: dict) -> str:
    """The headline figures, one line each (parts that did not run are left out)."""
    lines = ["| figure | value |", "|---|---|"]
    for part, start, key, label in SUMMARY:
        rows = [r for r in results["rows"] if r["part"] == part and r["name"].strip().startswith(start)
                and r.get(key) is not None]
        if rows:
            value = rows[-1][key]
            if "N processes" in label:
                label = label.replace("N", str(rows[-1].get("processes", "N")))
            lines.append(f"| {label} | {value:.3g} |" if isinstance(value, float) else f"| {label} | {value} |")
    return "\n".join(lines) + "\n"
