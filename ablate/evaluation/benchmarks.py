"""Real benchmarks by lmms-eval name (`vqav2_val`, `textvqa_val`, their `_lite` variants, ...).

They are hub datasets: the same `simple_evaluate` call runs them when the hub is reachable. Resolution reads
the built-in task YAML only (no download), so it can be checked offline; `check_available` fails early with
a message saying what to do when the data cannot be had.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

# Per-question metric key and breakdown column of the benchmarks we know; other built-in tasks resolve too.
KNOWN = {
    "vqav2_val": ("exact_match", "answer_type"),
    "vqav2_val_lite": ("exact_match", "answer_type"),
    "textvqa_val": ("exact_match", None),
    "textvqa_val_lite": ("exact_match", None),
}


class BenchmarkUnavailable(RuntimeError):
    """A hub benchmark that cannot be loaded here (offline, not cached)."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    yaml_path: str
    dataset_path: str  # hub dataset id
    metric: str  # per-question value in lmms-eval's logged samples
    type_column: str | None


@functools.lru_cache(maxsize=1)
def _builtin_yaml_index() -> dict[str, str]:
    """Built-in task name -> YAML path, from file names and their `task:` line (no imports of task code)."""
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        raise BenchmarkUnavailable("lmms-eval is not installed: pip install 'lmms-eval==0.7.3'")
    root = Path(list(spec.submodule_search_locations)[0]) / "tasks"  # no import: lmms_eval.tasks costs seconds
    index: dict[str, str] = {}
    for path in root.rglob("*.yaml"):
        try:
            head = path.read_text(encoding="utf-8", errors="ignore")
        except OSError:
            continue
        for line in head.splitlines():
            if line.startswith("task:"):
                name = line.split(":", 1)[1].strip().strip("\"'")
                index.setdefault(name, str(path))
                break
    return index


def is_builtin(name: str) -> bool:
    """Whether lmms-eval ships a task of this name (generated tasks must not reuse one)."""
    return name in _builtin_yaml_index()


def resolve_benchmark(name: str) -> Benchmark:
    """The built-in lmms-eval task `name`: its YAML, hub dataset and per-question metric."""
    from lmms_eval.utils import load_yaml_config  # lazy: lmms-eval (~5 s) only to read a built-in task

    index = _builtin_yaml_index()
    if name not in index:
        close = sorted(n for n in index if n.split("_")[0] == name.split("_")[0])[:12]
        raise ValueError(f"unknown task {name!r}: not an embedded, custom or lmms-eval task (similar: {close})")
    config = load_yaml_config(index[name], mode="simple")
    metric, type_column = KNOWN.get(name, (None, None))
    if metric is None:
        metric_list = config.get("metric_list") or [{"metric": "exact_match"}]
        metric = metric_list[0]["metric"]
    return Benchmark(name, index[name], str(config.get("dataset_path", "")), metric, type_column)


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes"} for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def check_available(bench: Benchmark) -> None:
    """Raise `BenchmarkUnavailable` when offline and the benchmark's dataset is not in the local hub cache."""
    if not _offline() or not bench.dataset_path or os.path.exists(bench.dataset_path):
        return
    from huggingface_hub import snapshot_download  # lazy: only to fetch a hub benchmark

    try:
        snapshot_download(bench.dataset_path, repo_type="dataset", local_files_only=True)
    except Exception as err:  # LocalEntryNotFoundError and friends
        raise BenchmarkUnavailable(
            f"{bench.name} needs the hub dataset {bench.dataset_path!r}, which is not in the local cache and "
            "HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set. Run once online (or copy the Hugging Face cache), "
            "or evaluate a local copy as a custom task (EvalConfig.custom_tasks, see docs/evaluation.md)."
        ) from err
