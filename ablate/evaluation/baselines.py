"""Reference levels logged next to the scores: `chance/<task>` (a random guess) and `baseline/<task>` (the task's
own reference, e.g. a question-only model), per question type as `chance/<task>/<type>`. The report draws them as
rows of the score tables and grey lines on the figures (`ablate.report.results`).

- a custom task states them (`chance`, `baseline`: a number, or a number per question type); with a per-type
  mapping the task's level is the mean over its questions (the first `limit`) when every type has one;
- the embedded `world_vqa` has its chance per type from the world's answer sets (colour: one of the world's
  colours, shape: one of its shapes, position: one of 9 cells, count: 1 to 4), and over the task the mean over its
  questions. (`world_textvqa`'s chance, 1 / n_words, the report computes itself.)
- the embedded `world_vqa` and `world_textvqa` have as their baseline the majority answer, a question-only prior:
  each test question answered with the most common training answer of the same prompt (the world's instruction
  rows over its train images), per type and over the task;
- a blind evaluation `<task>_blind` has its task's levels, and `control/<task>_blind` = 1; a custom task marked
  `control: true` has `control/<task>` = 1 (the report keeps controls out of Avg and the best-cell choice).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ablate.evaluation import metrics
from ablate.evaluation.keys import blind_tasks, unblind
from ablate.evaluation.taskfns import as_answers, load_records
from ablate.evaluation.tasks import world_dir
from ablate.world import vocab

KINDS = ("chance", "baseline")
MAJORITY_FILES = {"world_vqa": "vqa", "world_textvqa": "textvqa"}   # embedded task -> its question files


def world_majority(world, task: str, limit: int | None) -> dict[str, float]:
    """`baseline/<task>` (and per type): the score of answering each of the task's first `limit` test questions
    with the most common training answer of its prompt (over the whole task where a prompt never trained)."""
    from ablate.data.instruction import IMAGE_MARKER, world_rows  # lazy: datasets

    by_prompt: dict[str, Counter] = {}
    overall: Counter = Counter()
    for row in world_rows(world):
        by_prompt.setdefault(row["text"].removeprefix(IMAGE_MARKER), Counter())[row["answer"]] += 1
        overall[row["answer"]] += 1
    if not overall:
        return {}
    records = world.questions(MAJORITY_FILES[task])
    records = records[:limit] if limit else records
    by_type: dict[str, list[float]] = {}
    for r in records:
        guess = (by_prompt.get(r["prompt"]) or overall).most_common(1)[0][0]
        by_type.setdefault(str(r.get("type")), []).append(metrics.SCORERS["vqa"](guess, as_answers(r["answers"])))
    out = {f"baseline/{task}/{t}": sum(v) / len(v) for t, v in by_type.items()}
    scores = [x for v in by_type.values() for x in v]
    out[f"baseline/{task}"] = sum(scores) / len(scores)
    return out


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
        if custom.control:
            out[f"control/{custom.name}"] = 1.0
    if "world_vqa" in cfg.tasks and world is not None:
        counts = _type_counts(world_dir(world) / "questions" / "vqa_test.jsonl", "type", cfg.limit)
        out.update(_levels("chance/world_vqa", world_vqa_chance(), counts))
    if world is not None and hasattr(world, "questions"):
        for task in [t for t in cfg.tasks if t in MAJORITY_FILES]:
            out.update(world_majority(world, task, cfg.limit))
    for blind in blind_tasks(cfg):   # a blind evaluation asks its task's questions: its task's levels
        for name, value in list(out.items()):
            kind, task, *rest = name.split("/")
            if kind in KINDS and task == unblind(blind):
                out["/".join([kind, blind, *rest])] = value
        out[f"control/{blind}"] = 1.0
    return out
