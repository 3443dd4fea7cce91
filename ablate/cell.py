"""One cell, start to finish: build the model, train it, evaluate it, log it all to its run."""
from __future__ import annotations

import logging
import random
import time

import numpy as np
import torch

from ablate.checkpoint import resume_state, save_checkpoint
from ablate.config.grid import Cell
from ablate.config.spec import Spec
from ablate.models.features import FeatureCache
from ablate.progress import Progress
from ablate.tracking.store import RunLogger
from ablate.train.loop import TrainState, train
from ablate.train.optim import build_optimizer
from ablate.workspace import Workspace

log = logging.getLogger(__name__)


class CellHooks:
    """What the training loop reports to: the run's metrics, the progress display, checkpoints."""

    def __init__(self, cell: Cell, model, logger: RunLogger, progress: Progress | None, workspace: Workspace,
                 elapsed=lambda: 0.0):
        self.cell, self.model, self.logger, self.progress, self.workspace = cell, model, logger, progress, workspace
        self.steps = cell.config.train.steps
        self.elapsed = elapsed   # seconds the cell has run, earlier attempts included (kept in the checkpoint)

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.logger.log_step(step, **{"train/loss": loss, "train/lr": lr})
        if self.progress:
            self.progress.step(step, self.steps, loss)

    def on_checkpoint(self, step: int, state: dict) -> None:
        self.logger.flush()
        save_checkpoint(self.workspace.checkpoints(self.cell.id) / "last", self.model, self.cell.config,
                        state["state"], state["optimizer"], state["scheduler"], elapsed_s=self.elapsed(),
                        keep_previous=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_cell(cell: Cell, workspace: Workspace, logger: RunLogger, feature_cache: FeatureCache | None = None,
             progress: Progress | None = None) -> dict[str, float]:
    """Train and evaluate one cell; returns the scores it logged. Raises on failure (the runner records why)."""
    from ablate.data import train_batches
    from ablate.evaluation import evaluate
    from ablate.models.build import build_mllm
    from ablate.models.connectors import count_parameters, forward_flops
    from ablate.world import build_world

    cfg = cell.config
    started = time.monotonic()
    seed_everything(cfg.train.seed)
    world = build_world(cfg.data.world, workspace.cache)
    model = build_mllm(cfg, workspace.cache, feature_cache)
    cost = {"connector_params": count_parameters(model.connector),
            "connector_flops": forward_flops(model.connector, model.encoder.dim, model.encoder.grid)}
    sample = [row["image"] for row in world.read("caption")[:64]]
    cost["visual_tokens_per_image"] = sum(len(model.image_tokens.block(p)) for p in sample) / len(sample)
    logger.log_metrics({**cost, **zoo_metrics(cfg.encoder.name, workspace)})

    optimizer, scheduler = build_optimizer(model, cfg.train)
    resumed = resume_state(workspace.checkpoints(cell.id) / "last", model, optimizer, scheduler)
    state = resumed.state if resumed else TrainState()
    earlier_s = resumed.elapsed_s if resumed else 0.0   # earlier attempts, up to the checkpoint resumed from
    if state.step:
        log.info("cell %s resumes at step %d", cell.id, state.step)
        for step, loss in state.losses:   # the new run carries the whole curve
            logger.log_step(step, **{"train/loss": loss})
        logger.set_tags({"ablate.resumed_from_step": state.step})
    batches = train_batches(cfg.data, world, model.tokenizer, model.image_tokens, cfg.train.batch_size,
                            cfg.train.seed, start_step=state.step)
    logger.log_metrics({"data/padding_fraction": padding_fraction(cfg, world, model)})
    train_started = time.monotonic()
    state = train(model, batches, cfg.train, optimizer, scheduler, CellHooks(
        cell, model, logger, progress, workspace, elapsed=lambda: earlier_s + time.monotonic() - started), state)
    train_s = time.monotonic() - train_started
    logger.flush()
    save_checkpoint(workspace.checkpoints(cell.id) / "final", model, cfg)

    eval_started = time.monotonic()
    result = evaluate(model, cfg.eval, world, workspace.checkpoints(cell.id) / "eval")
    if cfg.eval.text_perplexity:
        from ablate.evaluation.perplexity import text_perplexity

        texts = [row["text"] for row in world.read("text_heldout")][: cfg.eval.text_perplexity]
        result_extra = {"text/perplexity": text_perplexity(model.llm, model.tokenizer, texts)}
    else:
        result_extra = {}
    eval_s = time.monotonic() - eval_started
    metrics = {**result.metrics, **result_extra, "time/train_s": train_s, "time/eval_s": eval_s,
               "wall_s": earlier_s + time.monotonic() - started,
               "train/final_loss": float(np.mean([loss for _, loss in state.losses[-10:]]))}
    if feature_cache is not None:
        metrics["feature_cache/hits"] = feature_cache.hits
    logger.log_metrics(metrics)
    if result.samples:
        logger.log_table(result.samples, "predictions.json")
    logger.set_tags({"ablate.checkpoint": str(workspace.checkpoints(cell.id) / "final")})
    return metrics


def prepare_assets(cells: list[Cell], workspace: Workspace, say=print) -> None:
    """Build once, before the first cell, what the cells share: the embedded worlds and the zoo backbones."""
    from ablate.world import build_world
    from ablate.zoo import ensure_built, model_dir

    for world_cfg in {cell.config.data.world for cell in cells}:
        build_world(world_cfg, workspace.cache)
    specs = dict.fromkeys(spec for cell in cells for spec in (cell.config.encoder.name, cell.config.llm.name)
                          if Spec.parse(spec).family == "zoo")
    for spec in specs:
        if not (model_dir(spec, workspace.cache) / "zoo.json").is_file():
            say(f"building {spec} (first use only: pretraining a tiny backbone on the embedded world)")
            ensure_built(spec, workspace.cache, log_fn=lambda text: say(f"    {text}"))


def zoo_metrics(spec: str, workspace: Workspace) -> dict[str, float]:
    """A zoo encoder's pre-training figures (held-out image-caption retrieval), logged as `encoder/<name>`."""
    if Spec.parse(spec).family != "zoo":
        return {}
    import json

    from ablate.zoo import model_dir

    marker = model_dir(spec, workspace.cache) / "zoo.json"
    metrics = json.loads(marker.read_text()).get("metrics", {}) if marker.is_file() else {}
    return {f"encoder/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def padding_fraction(cfg, world, model, batches: int = 8) -> float:
    """Share of padding in the cell's first training batches (the cost of not packing)."""
    from itertools import islice

    from ablate.data import train_batches

    stream = train_batches(cfg.data, world, model.tokenizer, model.image_tokens, cfg.train.batch_size, cfg.train.seed)
    values = [batch.padding_fraction for batch in islice(stream, batches)]
    return float(sum(values) / max(len(values), 1))
