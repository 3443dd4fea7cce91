"""From an `EvalConfig` to the lmms-eval tasks to run: embedded world tasks, custom local datasets, benchmarks.

Names: `<task>` for 0-shot, `<task>_<k>shot` for k-shot (e.g. `world_vqa_4shot`). Embedded and custom tasks
become `TaskSpec`s written as task folders (`taskgen.write_task`); real benchmarks keep their lmms-eval name.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ablate.evaluation.benchmarks import KNOWN, resolve_benchmark
from ablate.evaluation.keys import BLIND_SEED, blind_tasks, evaluations, unblind
from ablate.evaluation.spec import TaskSpec

# Embedded tasks over the world's question sets `questions/<file>_<split>.jsonl` (docs/architecture.md).
EMBEDDED: dict[str, dict] = {
    "world_vqa": {"file": "vqa", "metric": "vqa", "until": ("\n", ".")},
    "world_textvqa": {"file": "textvqa", "metric": "vqa", "extra_metrics": ("anls",), "until": ("\n", ".")},
    "world_caption": {"file": "caption", "metric": "cider", "until": ("\n",), "min_new_tokens": 24},
}


@dataclass(frozen=True)
class PlannedTask:
    """One (task, shots) cell of an evaluation."""

    base: str
    shots: int
    lmms_name: str
    metric: str  # per-question value to read from lmms-eval's samples
    type_column: str | None
    spec: TaskSpec | None = None  # None for a real benchmark
    benchmark: object | None = None  # benchmarks.Benchmark


def task_name(base: str, shots: int) -> str:
    return base if shots == 0 else f"{base}_{shots}shot"


def world_dir(world) -> Path:
    """The world's folder, from a `World` (its `root` / `path` / `dir` attribute) or a path."""
    if isinstance(world, (str, Path)):
        return Path(world)
    for attr in ("root", "path", "dir", "directory"):
        value = getattr(world, attr, None)
        if isinstance(value, (str, Path)):
            return Path(value)
    raise TypeError(f"cannot find the folder of world {world!r}: give a path or an object with .root")


def embedded_spec(base: str, shots: int, cfg, world) -> TaskSpec:
    info = EMBEDDED[base]
    questions = world_dir(world) / "questions"
    test, demo = questions / f"{info['file']}_test.jsonl", questions / f"{info['file']}_demo.jsonl"
    if not test.is_file():
        raise FileNotFoundError(f"{base}: no question set at {test} (build the world first)")
    if shots and not demo.is_file():
        raise FileNotFoundError(f"{base}_{shots}shot: no demonstration pool at {demo}")
    return TaskSpec(
        name=task_name(base, shots),
        base=base,
        data_file=str(test.resolve()),
        shots=shots,
        demo_file=str(demo.resolve()) if shots else None,
        seed=cfg.fewshot_seed,
        prompt="{prompt}",
        fewshot_template=cfg.fewshot_template,
        metric=info["metric"],
        extra_metrics=tuple(info.get("extra_metrics", ())),
        max_new_tokens=max(cfg.max_new_tokens, info.get("min_new_tokens", 0)),
        until=tuple(info["until"]),
    )


def custom_spec(custom, shots: int, cfg) -> TaskSpec:
    path = Path(custom.path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"custom task {custom.name}: no question file at {path}")
    demo = Path(custom.demo_path).expanduser().resolve() if custom.demo_path else None
    if demo is not None and not demo.is_file():
        raise FileNotFoundError(f"custom task {custom.name}: no demonstration file at {demo}")
    return TaskSpec(
        name=task_name(custom.name, shots),
        base=custom.name,
        data_file=str(path),
        shots=shots,
        demo_file=str(demo) if demo else None,
        seed=cfg.fewshot_seed,
        prompt=custom.prompt,
        fewshot_template=cfg.fewshot_template,
        metric=custom.metric,
        image_column=custom.image_column,
        question_column=custom.question_column,
        answers_column=custom.answers_column,
        id_column=custom.id_column,
        type_column=custom.type_column,
        image_root=str(Path(custom.image_root).expanduser().resolve()) if custom.image_root else None,
        max_new_tokens=max(cfg.max_new_tokens, 24 if custom.metric == "cider" else 0),
        until=("\n",),
        format=custom.format,
        conversations_column=custom.conversations_column,
    )


def plan(cfg, world=None) -> list[PlannedTask]:
    """Every (task, shots) of `cfg`, in order. Raises on unknown names or impossible combinations."""
    customs = {c.name: c for c in cfg.custom_tasks}
    if len(customs) != len(cfg.custom_tasks):
        raise ValueError("custom task names must be unique")
    planned = []
    blind = blind_tasks(cfg)
    for base, shots in evaluations(cfg):   # a conversation task: 0-shot only
        shown = unblind(base) if base in blind else base   # a blind task asks its task's questions
        if shown in EMBEDDED or shown in customs:
            if shown in EMBEDDED:
                if world is None:
                    raise ValueError(f"{shown} is an embedded task: give the world")
                spec = embedded_spec(shown, shots, cfg, world)
            else:
                spec = custom_spec(customs[shown], shots, cfg)
            if base in blind:
                spec = replace(spec, name=task_name(base, shots), base=base, blind_seed=BLIND_SEED)
            metric = spec.metric
            planned.append(PlannedTask(base, shots, spec.name, metric, spec.type_column, spec=spec))
            continue
        bench = resolve_benchmark(base)
        if shots:
            raise ValueError(
                f"{base} with {shots} shots: interleaved few-shot is built for embedded and custom tasks only; "
                f"evaluate a local copy of {base} as a custom task (docs/evaluation.md) for k > 0"
            )
        planned.append(PlannedTask(base, 0, base, bench.metric, bench.type_column, benchmark=bench))
    return planned


def known_task_names(cfg=None) -> list[str]:
    """Task names a grid may ask for: the embedded tasks, the usual hub benchmarks and, given an
    `EvalConfig`, its custom tasks. (`evaluate` also runs any other built-in lmms-eval task by name.)"""
    custom = [c.name for c in cfg.custom_tasks] if cfg is not None else []
    return [*EMBEDDED, *KNOWN, *custom]
