"""Names: sanitised file stems, and the human labels of axes, tasks and metrics."""
from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

AXIS_LABELS = {
    "connector.name": "Connector",
    "connector.tokens": "Tokens",
    "encoder.name": "Encoder",
    "encoder.resolution": "Resolution",
    "encoder.image_handling": "Image handling",
    "encoder.feature_layer": "Feature layer",
    "llm.name": "LLM",
    "data.mixture": "Data mixture",
    "train.steps": "Steps",
    "train.lr": "Learning rate",
    "train.batch_size": "Batch size",
}
TASK_LABELS = {"vqa": "VQA", "textvqa": "TextVQA", "caption": "Caption", "okvqa": "OK-VQA", "vizwiz": "VizWiz"}
SEED_AXES = ("seed", "train.seed")


def sanitise(name: str, fallback: str = "grid", max_len: int = 60) -> str:
    """A file-name stem from any text: ASCII, lower case, `[a-z0-9._-]` only, no leading dots or dashes."""
    ascii_ = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^a-z0-9._-]+", "-", ascii_.lower())
    stem = re.sub(r"[-._]{2,}", "-", stem).strip("-._")[:max_len].strip("-._")
    return stem or fallback


def axis_label(axis: str) -> str:
    return AXIS_LABELS.get(axis, axis)


def task_label(task: str) -> str:
    short = task.removeprefix("world_")
    if short in TASK_LABELS:
        return TASK_LABELS[short]
    return short.upper() if len(short) <= 4 else short.replace("_", " ")


def metric_label(task: str, shots: int) -> str:
    return f"{task_label(task)} {shots}-shot"


def _as_mixture(value: Any) -> dict | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value.replace("'", '"'))
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def value_label(value: Any) -> str:
    """How a swept value is printed: mixtures as percent of samples per source, floats without noise."""
    mixture = _as_mixture(value)
    if mixture is not None:
        total = sum(float(v) for v in mixture.values()) or 1.0
        return " / ".join(f"{k} {100 * float(v) / total:.0f}" for k, v in mixture.items())
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, tuple, dict, set)) and not value)


def setting_label(value: Any, key: str = "") -> str:
    """A fixed setting as a reader wants it: `['a', 'b']` -> `a, b`, `{'depth': 2}` -> `depth 2`, a data mixture
    (key `...mixture`) in % of samples, a newline as `\\n`; floats without noise."""
    if key.endswith("mixture") and _as_mixture(value) is not None:
        return value_label(value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {setting_label(v)}" for k, v in value.items() if not _empty(v))
    if isinstance(value, (list, tuple, set)):
        return ", ".join(setting_label(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value.replace("\n", "\\n").replace("\t", "\\t")
    return value_label(value)


def fixed_items(fixed: dict) -> list[tuple[str, str]]:
    """The fixed settings worth printing, `(dotted key, readable value)`: seeds (replicates) and empty values
    (`connector.options = {}`, `data.sources = []`) are left out."""
    return [(k, setting_label(v, k)) for k, v in fixed.items() if k not in SEED_AXES and not _empty(v)]
