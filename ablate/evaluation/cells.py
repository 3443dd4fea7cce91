"""A cell's evaluation, apart from its training: what is evaluated, and evaluating a cell that trained already.

`evaluate_model` runs every evaluation a cell asks for (or those pending: `ablate.evaluation.keys`) on a model in
memory and says which evaluation tags they earn; `ablate.cell.run_cell` calls it right after training.
`evaluate_trained` does it for a finished cell from its final checkpoint: it builds the model, evaluates what is
pending, and logs the new scores to the cell's existing MLflow run (the run stays FINISHED; see docs/evaluation.md,
"Evaluating again"), with the run's sample of predictions updated and its `wall_s` / `time/eval_s` counting the
extra time. Nothing is trained.
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ablate.evaluation import keys
from ablate.evaluation.baselines import reference_metrics
from ablate.evaluation.runner import evaluate
from ablate.evaluation.vocabulary import task_unk_metrics
from ablate.tracking.store import REASON_TAG, RunLogger

log = logging.getLogger(__name__)

CHECKPOINT_TAG = "ablate.checkpoint"
LEGACY_TAG = "ablate.legacy_cell_id"
PREDICTIONS = "predictions.json"
QUESTIONS = "questions.json"   # every question's answer and score (`runner.per_question`): the report reads it
ENDED_IN_EVALUATION = ("FAILED", "KILLED")   # run states a cell with a final checkpoint is evaluated from


@dataclass
class CellEvaluation:
    metrics: dict[str, float]
    predictions: list[dict]
    tags: dict[str, str]                     # the evaluation tags earned (`ablate.eval/<task>/<k>shot` -> key)
    seconds: float = 0.0
    done: list[str] = field(default_factory=list)   # "<task>/<k>shot" and "text/perplexity", for messages
    questions: list[dict] = field(default_factory=list)   # every question's answer and score


def evaluate_model(model, cfg, world, out_dir: Path, todo: dict[str, str] | None = None) -> CellEvaluation:
    """Evaluate `model` on what `cfg` (a `CellConfig`) asks for, or on `todo` (tag name -> key, from
    `keys.pending`); also the tasks' reference levels (`chance/...`, `baseline/...`)."""
    started = time.monotonic()
    todo = keys.wanted(cfg.eval) if todo is None else todo
    only = keys.pairs(todo)
    metrics: dict[str, float] = {}
    predictions: list[dict] = []
    questions: list[dict] = []
    if only:
        result = evaluate(model, cfg.eval, world, out_dir, only=only)
        metrics.update(result.metrics)
        predictions, questions = result.samples, result.per_question
    if keys.EVAL_TAG + keys.PERPLEXITY in todo:
        from ablate.evaluation.perplexity import text_perplexity  # lazy: torch

        texts = [row["text"] for row in world.read("text_heldout")][: cfg.eval.text_perplexity]
        metrics[keys.PERPLEXITY] = text_perplexity(model.llm, model.tokenizer, texts)
        metrics[keys.PERPLEXITY + "_uniform"] = float(len(model.tokenizer))   # a uniform guess: its vocabulary
    metrics.update(reference_metrics(cfg.eval, world))
    done = sorted(name.removeprefix(keys.EVAL_TAG) for name in todo)
    return CellEvaluation(metrics, predictions, dict(todo), time.monotonic() - started, done, questions)


def final_checkpoint(cell_id: str, tags: dict[str, str], checkpoints) -> Path | None:
    """The cell's final checkpoint: where its run says, else under its id, else under the legacy id it was
    trained with (`checkpoints`: cell id -> folder, `Workspace.checkpoints`)."""
    candidates = [tags.get(CHECKPOINT_TAG), checkpoints(cell_id) / "final"]
    if tags.get(LEGACY_TAG):
        candidates.append(checkpoints(tags[LEGACY_TAG]) / "final")
    for candidate in filter(None, candidates):
        if (Path(candidate) / "config.json").is_file() and (Path(candidate) / "model.safetensors").is_file():
            return Path(candidate)
    return None


class NoCheckpoint(RuntimeError):
    """A finished cell has evaluations pending but its final checkpoint is gone."""


def evaluate_trained(cell, workspace, store, record, todo: dict[str, str]) -> CellEvaluation:
    """Evaluate the finished cell `cell` (its run `record`) on `todo` from its final checkpoint and log it all to
    that run. Raises `NoCheckpoint` when the checkpoint is gone (the caller says how to train the cell again)."""
    # lazy: the CLI loads this module; the model stack (torch, transformers) only once a cell is evaluated
    from ablate.checkpoint import load_weights
    from ablate.models.build import build_mllm
    from ablate.world import build_world

    folder = final_checkpoint(cell.id, record.tags, workspace.checkpoints)
    if folder is None:
        raise NoCheckpoint(f"cell {cell.id} ({cell.label() or 'the only cell'}) has no final checkpoint (looked in "
                           f"{record.tags.get(CHECKPOINT_TAG) or workspace.checkpoints(cell.id) / 'final'}), so "
                           f"{', '.join(sorted(n.removeprefix(keys.EVAL_TAG) for n in todo))} cannot be evaluated: "
                           "delete the cell's run in MLflow (`ablate ui`) and `ablate run` trains it again")
    started = time.monotonic()
    world = build_world(cell.config.data.world, workspace.cache)
    model = build_mllm(cell.config, workspace.cache)
    load_weights(folder, model)
    model.eval()
    result = evaluate_model(model, cell.config, world, workspace.checkpoints(cell.id) / "eval", todo)
    seconds = time.monotonic() - started
    logger = RunLogger(store.client, record.run_id)
    metrics = {**task_unk_metrics(cell.config.eval, world, model.tokenizer,
                                  sorted({task for task, _ in keys.pairs(todo)})), **result.metrics}
    metrics["time/eval_s"] = float(record.metrics.get("time/eval_s", 0.0)) + seconds
    metrics["wall_s"] = float(record.metrics.get("wall_s", 0.0)) + seconds
    if record.status != "FINISHED":
        metrics.update(_training_figures(store, record, folder, metrics["wall_s"]))
    logger.log_metrics(metrics)
    if result.predictions:
        _replace_predictions(store, logger, record.run_id, result.predictions, keys.pairs(todo))
    if result.questions:
        _replace_predictions(store, logger, record.run_id, result.questions, keys.pairs(todo), QUESTIONS)
    logger.set_tags({**result.tags, "ablate.evaluated_again": time.strftime("%Y-%m-%d %H:%M:%S"),
                     CHECKPOINT_TAG: str(folder)})
    if record.status != "FINISHED":   # trained to the end, its evaluation had failed or was cut: now complete
        reason = record.tags.get(REASON_TAG)
        logger.set_tags({"ablate.completed": f"run ended {record.status} after training "
                                             f"({reason or 'no reason recorded'}); evaluated from {folder}"})
        if reason:
            store.client.delete_tag(record.run_id, REASON_TAG)
        logger.finish("FINISHED")
    result.seconds = seconds
    return result


def reference_updates(cell, workspace, record) -> dict[str, float]:
    """The reference levels (`chance/...`, `baseline/...`) the cell's evaluation states now and its run lacks or
    holds with another value: a `chance` or `baseline` added or changed in the grid evaluates nothing again, these
    are logged as they are. The world (for world_vqa's chance) is read only when its chance is not logged yet."""
    cfg = cell.config.eval
    try:
        wanted = reference_metrics(cfg.model_copy(update={"tasks": [t for t in cfg.tasks if t != "world_vqa"]}))
        if "world_vqa" in cfg.tasks and "chance/world_vqa" not in record.metrics:
            from ablate.world import build_world  # lazy: transformers (the world tokenizer)

            wanted.update(reference_metrics(cfg, build_world(cell.config.data.world, workspace.cache)))
    except Exception as err:  # noqa: BLE001 - a reference level is never worth stopping a grid for
        log.warning("cell %s: reference levels not logged (%s: %s)", cell.id, type(err).__name__, err)
        return {}
    return {k: v for k, v in wanted.items() if record.metrics.get(k) is None or abs(record.metrics[k] - v) > 1e-12}


def _training_figures(store, record, folder: Path, eval_wall_s: float) -> dict[str, float]:
    """What a run that ended before its metrics were logged lacks: its training time (run start to the final
    checkpoint) and final loss (the mean of its last 10 logged losses)."""
    out = {}
    train_s = (folder / "model.safetensors").stat().st_mtime - record.start_time / 1000
    if "time/train_s" not in record.metrics and train_s > 0:
        out["time/train_s"] = train_s
        out["wall_s"] = eval_wall_s + train_s
    losses = [loss for _, loss in store.loss_curve(record.run_id)][-10:]
    if "train/final_loss" not in record.metrics and losses:
        out["train/final_loss"] = sum(losses) / len(losses)
    return out


def _replace_predictions(store, logger, run_id: str, rows: list[dict], redone: set[tuple[str, int]],
                         name: str = PREDICTIONS) -> None:
    """The run's sample of predictions (or its `name` table) with the rows of the (task, shots) evaluated again
    replaced."""
    import pandas as pd  # lazy: pandas only where predictions are merged

    from ablate.tracking.results import read_predictions  # lazy: pandas

    old = read_predictions(store, run_id, name)
    new = pd.DataFrame(rows)
    if old is not None and len(old):
        kept = old[[(str(t), int(k)) not in redone for t, k in zip(old["task"], old["shots"])]]
        new = pd.concat([kept, new], ignore_index=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(json.dumps(json.loads(new.to_json(orient="split", index=False))))
        logger.log_artifact(path)   # replaces the file (MLflow's log_table would append to it)
