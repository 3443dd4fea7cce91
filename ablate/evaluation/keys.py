"""What an evaluation is keyed by, so that a trained cell is evaluated once per (task, shots, settings).

A cell's id is its training identity (`ablate.resolve.cell_id`, the eval block left out); its final checkpoint is
evaluated once per (task, shot count, the settings that change that score). Each evaluation done is a tag on the
cell's MLflow run, `ablate.eval/<task>/<k>shot` = the hash of those settings (`ablate.eval/text/perplexity` for the
held-out text perplexity). `pending` compares the tags with what the grid asks now: a new task or shot count, or a
changed limit, prompt, file or few-shot setting, is pending; what was done with the same settings is not.

The settings of a task's score: the task and shot count, `limit`, `max_new_tokens`, `bootstrap` (the interval);
with shots, `fewshot_seed` and `fewshot_template`; for a custom task its own block (file, columns, prompt, metric;
not its `chance` / `baseline` / `control`, which change no score). `batch_size` and `n_predictions` are left out:
they change how fast, and how many predictions are kept, not what is measured.

A blind evaluation (`eval.blind`, on by default) is a task of its own, `<task>_blind`, for every embedded and custom
task: the same questions with the images shuffled among them (`ablate.evaluation.taskfns`). Its key is its task's
settings plus the shuffle's seed, under its own tag, so the keys of the tasks themselves do not change.

A conversation task (`format: conversation`) is evaluated 0-shot only: `evaluations` leaves out its k-shot entries
(and its blind copy's), which the dry run says (`ablate.evaluation.checks.plan_warnings`).
"""
from __future__ import annotations

import hashlib
import json

EVAL_TAG = "ablate.eval/"
PERPLEXITY = "text/perplexity"
REFERENCE_ONLY = ("chance", "baseline", "control")   # custom-task settings that change no score
# custom-task settings added after evaluations were first keyed: at these defaults they stay out of a key, so the
# tasks evaluated before are not evaluated again
ADDED_DEFAULTS = {"format": "vqa", "conversations_column": "conversations"}
BLIND = "_blind"   # a blind evaluation's task name: <task>_blind
BLIND_SEED = 0     # the shuffle of the images among the questions


def blind_tasks(cfg) -> list[str]:
    """The blind evaluations `cfg` asks for: `<task>_blind` for each embedded and custom task (images of their
    own; hub benchmarks are not shuffled) when `cfg.blind`."""
    from ablate.evaluation.tasks import EMBEDDED  # lazy: tasks imports this module

    customs = {c.name for c in cfg.custom_tasks}
    return [t + BLIND for t in cfg.tasks if cfg.blind and (t in EMBEDDED or t in customs)]


def zero_shot_only(cfg) -> set[str]:
    """The tasks of `cfg` evaluated 0-shot only: the conversation custom tasks and their blind copies."""
    names = {c.name for c in cfg.custom_tasks if getattr(c, "format", "vqa") == "conversation"}
    return names | {n + BLIND for n in names}


def evaluations(cfg) -> list[tuple[str, int]]:
    """Every (task, shots) `cfg` evaluates, in order: each task and blind copy at each shot count, a conversation
    task at 0 shots only."""
    single = zero_shot_only(cfg)
    return [(task, shots) for task in [*cfg.tasks, *blind_tasks(cfg)] for shots in cfg.shots
            if not (shots and task in single)]


def unblind(task: str) -> str:
    """The task a blind evaluation shuffles (the name itself for any other task)."""
    return task.removesuffix(BLIND)


def tag_name(task: str, shots: int) -> str:
    return f"{EVAL_TAG}{task}/{shots}shot"


def _digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def task_key(cfg, task: str, shots: int) -> str:
    """The key of one (task, shots) evaluation under `cfg` (an `EvalConfig`)."""
    if task in blind_tasks(cfg):
        return _digest({"blind": task_key(cfg, unblind(task), shots), "seed": BLIND_SEED})
    settings: dict = {"task": task, "shots": shots, "limit": cfg.limit, "max_new_tokens": cfg.max_new_tokens,
                      "bootstrap": cfg.bootstrap}
    if shots:
        settings.update(fewshot_seed=cfg.fewshot_seed, fewshot_template=cfg.fewshot_template)
    custom = next((c for c in cfg.custom_tasks if c.name == task), None)
    if custom is not None:
        settings["custom"] = {k: v for k, v in custom.model_dump(mode="json").items()
                              if k not in REFERENCE_ONLY and not (k in ADDED_DEFAULTS and v == ADDED_DEFAULTS[k])}
    return _digest(settings)


def perplexity_key(cfg) -> str | None:
    return _digest({"texts": cfg.text_perplexity}) if cfg.text_perplexity else None


def wanted(cfg) -> dict[str, str]:
    """Every evaluation `cfg` asks for: tag name -> key."""
    out = {tag_name(task, shots): task_key(cfg, task, shots) for task, shots in evaluations(cfg)}
    ppl = perplexity_key(cfg)
    if ppl is not None:
        out[EVAL_TAG + PERPLEXITY] = ppl
    return out


def pending(cfg, tags: dict[str, str]) -> dict[str, str]:
    """The evaluations `cfg` asks for that a run with `tags` has not done with the same settings."""
    return {name: key for name, key in wanted(cfg).items() if tags.get(name) != key}


def pairs(names) -> set[tuple[str, int]]:
    """(task, shots) of tag names (the perplexity left out)."""
    out = set()
    for name in names:
        rest = name.removeprefix(EVAL_TAG)
        if rest == PERPLEXITY:
            continue
        task, _, shots = rest.rpartition("/")
        out.add((task, int(shots.removesuffix("shot"))))
    return out


def done_by_metrics(cfg, metrics: dict) -> dict[str, str]:
    """The evaluation tags a run made before evaluations were keyed has earned: those of `cfg` (the eval block it
    ran with) whose score it logged."""
    out = {}
    for name, key in wanted(cfg).items():
        rest = name.removeprefix(EVAL_TAG)
        metric = PERPLEXITY if rest == PERPLEXITY else f"score/{rest}"
        if metric in metrics:
            out[name] = key
    return out
