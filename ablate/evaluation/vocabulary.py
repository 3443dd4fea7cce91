"""The unknown-token share of each evaluation task: its prompts and reference answers, as the LLM's tokenizer reads
them (`ablate.data.vocabulary`). A reference the tokenizer cannot spell can never be generated: a task with many
scores 0 whatever the model sees.

Embedded and custom tasks are measured on the first `SAMPLE_ROWS` records of their question file (0-shot prompts:
demonstrations are records of the same kind); hub benchmarks are not read here (they may need a download).
"""
from __future__ import annotations

import logging
from pathlib import Path

from ablate.data.vocabulary import SAMPLE_ROWS, UnkShare, unk_metrics, unk_share
from ablate.data.vqa import first_records
from ablate.evaluation.taskfns import TaskFns
from ablate.evaluation.tasks import EMBEDDED, custom_spec, embedded_spec

log = logging.getLogger(__name__)


def task_texts(cfg, world, tasks: list[str] | None = None, rows: int = SAMPLE_ROWS) -> dict[str, list[str]]:
    """Task -> its first `rows` prompts, each followed by its reference answers (`cfg`: an `EvalConfig`;
    `tasks`: those to read, default all of `cfg.tasks`). A task whose file is missing is left out (the dry run
    names it)."""
    customs = {c.name: c for c in cfg.custom_tasks}
    out = {}
    for task in cfg.tasks if tasks is None else tasks:
        try:
            if task in EMBEDDED:
                spec = embedded_spec(task, 0, cfg, world)
            elif task in customs:
                spec = custom_spec(customs[task], 0, cfg)
            else:
                continue
            fns = TaskFns(spec)
            records = first_records(Path(spec.data_file), rows)
            if fns.conversation:
                records = [r for r in records if fns.dialogue(r) is not None]
            out[task] = [" ".join([fns.prompt_text(r), *fns.answers(r)]) for r in records]
        except (OSError, KeyError, ValueError) as err:
            log.info("task %s: unknown-token share not measured (%s: %s)", task, type(err).__name__, err)
    return out


def task_shares(cfg, world, tokenizer, tasks: list[str] | None = None) -> dict[str, UnkShare | None]:
    return {task: unk_share(tokenizer, texts) for task, texts in task_texts(cfg, world, tasks).items()}


def task_unk_metrics(cfg, world, tokenizer, tasks: list[str] | None = None) -> dict[str, float]:
    """`eval/<task>/unk_share` for the embedded and custom tasks of `cfg`, warning for each above the threshold."""
    return unk_metrics(task_shares(cfg, world, tokenizer, tasks), "eval",
                       {task: f"evaluation task {task}" for task in cfg.tasks})
