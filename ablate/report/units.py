"""Human units for counts, FLOPs, memory and durations (1.2M, 3.4 GFLOPs, 0.35 GiB, 2 h 05 min)."""
from __future__ import annotations

import math

_PREFIXES = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")]


def _scaled(x: float) -> tuple[float, str]:
    for factor, prefix in _PREFIXES:
        if abs(x) >= factor:
            return x / factor, prefix
    return x, ""


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}".rstrip("0").rstrip(".") if abs(x) >= 10 else f"{x:.2g}"


def human_count(x: float | None) -> str:
    """Parameter counts: 950 -> '950', 1_234_567 -> '1.2M'; 10% -> 3 significant digits at most."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    value, prefix = _scaled(float(x))
    return f"{_num(value)}{prefix}"


def human_flops(x: float | None) -> str:
    """FLOPs: 3.4e9 -> '3.4 GFLOPs'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    value, prefix = _scaled(float(x))
    return f"{_num(value)} {prefix}FLOPs"


def human_gib(x: float | None) -> str:
    """Memory in GiB: 0.347 -> '0.35 GiB', 12.34 -> '12 GiB'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{_num(float(x))} GiB"


def human_seconds(s: float | None) -> str:
    """Durations: 42 -> '42 s', 125 -> '2 min 05 s', 7500 -> '2 h 05 min'."""
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "—"
    s = float(s)
    if s < 59.5:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    s = round(s) if s < 3600 else round(s / 60) * 60
    if s < 3600:
        return f"{int(s // 60)} min {round(s % 60):02d} s"
    return f"{int(s // 3600)} h {round((s % 3600) / 60):02d} min"
