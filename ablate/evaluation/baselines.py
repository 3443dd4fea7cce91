"""Reference levels logged next to the scores: `chance/<task>` (a random guess) and `baseline/<task>` (the task's
own reference, e.g. a question-only model), per question type as `chance/<task>/<type>`. The report draws them as
rows of the score tables and grey lines on the figures (`ablate.report.results`).

- a custom task states them (`chance`, `baseline`: a number, or a number per question type); with a per-type
  mapping the task's level is the mean over its questions (the first `limit`) when every type has one;
- the embedded `world_vqa` has its chance per type from the world's answer sets (colour: one of the world's
  colours, shape: one of its shapes, position: one of 9 cells, count: 1 to 4), and over the task the mean over its
  questions. (`world_textvqa`'s chance, 1 / n_words, the report computes itself.)
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ablate.evaluation.taskfns import load_records
from ablate.evaluation.tasks import world_dir
from ablate.world import vocab

KINDS = ("chance", "baseline")


def world_vqa_chance() -> dict[str, float]:
    """A uniform guess among the answers a world_vqa question of each type can have."""
    return {"colour": 1 / len(vocab.COLOURS), "shape": 1 / len(vocab.SHAPES), "position": 1 / len(vocab.POSITIONS),
            "count": 1 / len(vocab.NUMBER_WORDS)}   # 1 to 4 shapes: the counts that have a number word


def _type_counts(file: Path, column: str | None, limit: int | None) -> Counter:
    if column is None or not file.is_file():
        return Counter()
    records = load_records(str(file))[:limit] if limit else load_records(str(file))
    return Counter(str(r.get(column)) for r in records if r.get(column) is not None)


def _levels(prefix: str, level, counts: Counter) -> dict[str, float]:
    """`prefix` (e.g. chance/<task>) and, for a per-type mapping, `prefix/<type>` and the questions' mean."""
    if not isinstance(level, dict):
        return {prefix: float(level)}
    out = {f"{prefix}/{t}": float(v) for t, v in level.items()}
    if counts and all(t in level for t in counts):
        out[prefix] = sum(level[t] * n for t, n in counts.items()) / sum(counts.values())
    return out


def reference_metrics(cfg, world=None) -> dict[str, float]:
    """The reference levels of the tasks `cfg` (an `EvalConfig`) evaluates."""
    out: dict[str, float] = {}
    for custom in cfg.custom_tasks:
        if custom.name not in cfg.tasks:
            continue
        counts = None
        for kind in KINDS:
            level = getattr(custom, kind)
            if level is None:
                continue
            if counts is None:
                counts = _type_counts(Path(custom.path).expanduser(), custom.type_column, cfg.limit) \
                    if isinstance(level, dict) else Counter()
            out.update(_levels(f"{kind}/{custom.name}", level, counts))
    if "world_vqa" in cfg.tasks and world is not None:
        counts = _type_counts(world_dir(world) / "questions" / "vqa_test.jsonl", "type", cfg.limit)
        out.update(_levels("chance/world_vqa", world_vqa_chance(), counts))
    return out
