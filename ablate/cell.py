"""One cell, start to finish: build the model, train it, evaluate it, log it all to its run."""
from __future__ import annotations

import json
import logging
import random
import resource
import time
from itertools import islice

import numpy as np
import torch

from ablate.checkpoint import resume_state, save_checkpoint
from ablate.config.grid import Cell
from ablate.config.schema import CellConfig
from ablate.config.spec import Spec
from ablate.config.stages import Stage, plan, stage_at
from ablate.data import train_batches
from ablate.data.vocabulary import source_unk_metrics
from ablate.evaluation.cells import evaluate_model
from ablate.evaluation.vocabulary import task_unk_metrics
from ablate.models.build import build_mllm
from ablate.models.connectors import count_parameters, forward_flops
from ablate.models.features import FeatureCache
from ablate.progress import Progress
from ablate.tracking.store import RunLogger
from ablate.train import parallel
from ablate.train.loop import Diverged, TrainState, train_stages
from ablate.train.optim import SchedulerSlot, StageOptimizer
from ablate.train.speed import apply_switches, batch_stream, resolve_switches
from ablate.workspace import Workspace
from ablate.world import build_world
from ablate.zoo import ensure_built, model_dir, shipped_folder
from ablate.zoo.shipping import is_shipped_install

log = logging.getLogger(__name__)


class CellHooks:
    """What the training loop reports to: the run's metrics, the progress display, checkpoints.

    Every cell logs `train/loss` and `train/lr` over its global steps; a cell with `train.stages` also logs
    `train/<stage>/loss` and `train/<stage>/lr`, and `train/stage` (the stage's index) at each stage's first step."""

    def __init__(self, cell: Cell, model, logger: RunLogger, progress: Progress | None, workspace: Workspace,
                 elapsed=lambda: 0.0):
        self.cell, self.model, self.logger, self.progress, self.workspace = cell, model, logger, progress, workspace
        self.steps = cell.config.train.steps
        self.elapsed = elapsed   # seconds the cell has run, earlier attempts included (kept in the checkpoint)
        self.stages = plan(cell.config.train) if cell.config.train.stages else None

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.logger.log_step(step, **step_metrics(self.stages, step, loss, lr))
        if self.progress:
            self.progress.step(step, self.steps, loss)

    def on_stage(self, stage: Stage, step: int) -> None:
        if self.stages is not None:
            where = "begins" if step == stage.start else f"resumes at step {step - stage.start} of {stage.steps}"
            log.info("cell %s: stage %d/%d %r %s (global steps %d-%d)", self.cell.id, stage.index + 1,
                     len(self.stages), stage.name, where, stage.start + 1, stage.end)
            self.logger.set_tags({"ablate.stage": stage.name})

    def on_checkpoint(self, step: int, state: dict) -> None:
        if not parallel.is_main():   # rank 0 alone writes checkpoints (the ranks hold the same state)
            return
        self.logger.flush()
        save_checkpoint(self.workspace.checkpoints(self.cell.id) / "last", self.model, self.cell.config,
                        state["state"], state["optimizer"], state["scheduler"], elapsed_s=self.elapsed(),
                        keep_previous=True)


class SilentLogger:
    """What a rank other than 0 logs to: nothing (rank 0 alone writes the cell's run)."""

    run_id = None

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


class TrainCost:
    """What training a cell cost, logged as `cost/...`: samples/s and tokens/s (text and visual, all processes
    together), the median step time, peak memory (CUDA max allocated, or the process's peak RSS on the CPU) and
    the number of processes. Counts the batches as they are drawn and times the steps as they are reported."""

    def __init__(self, image_token_id: int):
        self.image_token_id = image_token_id
        self.counts = torch.zeros(3, dtype=torch.float64)   # samples, text tokens, visual tokens (this process)
        self.step_s: list[float] = []
        self._last: float | None = None

    def counted(self, batches_for):
        def counting(stage: Stage, done: int):
            for batch in batches_for(stage, done):
                real = batch.attention_mask.bool()
                visual = int((batch.input_ids[real] == self.image_token_id).sum())
                self.counts += torch.tensor([batch.input_ids.shape[0], int(real.sum()) - visual, visual])
                yield batch
        return counting

    def timed(self, hooks):
        on_step = hooks.on_step

        def timing(step: int, loss: float, lr: float) -> None:
            now = time.monotonic()
            if self._last is not None:
                self.step_s.append(now - self._last)
            self._last = now
            on_step(step, loss, lr)

        hooks.on_step = timing
        return hooks

    def metrics(self, train_s: float, device: torch.device) -> dict[str, float]:
        counts = self.counts.clone()
        if parallel.active():
            torch.distributed.all_reduce(counts)
        samples, text, visual = (float(c) for c in counts)
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**30
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB on Linux
        per_s = 1.0 / max(train_s, 1e-9)
        return {"cost/samples_per_s": samples * per_s, "cost/tokens_per_s": (text + visual) * per_s,
                "cost/text_tokens_per_s": text * per_s, "cost/visual_tokens_per_s": visual * per_s,
                "cost/step_s_median": float(np.median(self.step_s)) if self.step_s else train_s,
                "cost/peak_memory_gib": peak, "cost/processes": float(parallel.world_size())}


def step_metrics(stages: list[Stage] | None, step: int, loss: float, lr: float | None = None) -> dict[str, float]:
    """The metrics of one step: `train/loss` (and `train/lr`); with stages, the stage's own and, at its first step,
    `train/stage`."""
    out = {"train/loss": loss} if lr is None else {"train/loss": loss, "train/lr": lr}
    if stages is not None:
        stage = stage_at(stages, step - 1)
        out[f"train/{stage.name}/loss"] = loss
        if lr is not None:
            out[f"train/{stage.name}/lr"] = lr
        if step == stage.start + 1:
            out["train/stage"] = float(stage.index)
    return out


def stage_batches(cfg: CellConfig, world, model, cache_dir=None, rows: slice | None = None):
    """`(stage, steps done in it) -> its batches from there on`: the stage's data and data-order seed; `rows`:
    this process's share of each global batch when several train the cell (`ablate.train.parallel.shard`)."""
    def batches_for(stage: Stage, done: int):
        return train_batches(stage.data(cfg.data), world, model.tokenizer, model.image_tokens, cfg.train.batch_size,
                             stage.seed(cfg.train.seed), start_step=done, cache_dir=cache_dir, rows=rows)

    return batches_for


def stage_optimizer(cfg: CellConfig, model, fused: bool | None = None) -> tuple[StageOptimizer, tuple]:
    """The stages' optimiser (first stage entered) and what checkpoints store as (optimizer, scheduler);
    `fused`: AdamW's fused kernel (`train.fused_adamw`; None: on CUDA)."""
    optim = StageOptimizer(model, cfg.train, fused)
    return optim, (optim, SchedulerSlot(optim))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_cell(cell: Cell, workspace: Workspace, logger: RunLogger, feature_cache: FeatureCache | None = None,
             progress: Progress | None = None) -> dict[str, float]:
    """Train and evaluate one cell; returns the scores it logged. Raises on failure (the runner records why).

    Under a launcher (runners/multigpu.yaml) every rank calls this: each trains its share of every global batch
    (`ablate.train.parallel`); rank 0 alone logs (the others get a `SilentLogger`), writes checkpoints and
    evaluates, after the others have left (they return `{}` once training is done)."""
    cfg = cell.config
    started = time.monotonic()
    parallel.announce("train")   # rank 0 holds the claim and a run: the other ranks train with it
    seed_everything(cfg.train.seed)
    world = build_world(cfg.data.world, workspace.cache)
    model = build_mllm(cfg, workspace.cache, feature_cache)
    cost = {"connector_params": count_parameters(model.connector),
            "connector_flops": forward_flops(model.connector, model.encoder.dim, model.encoder.grid)}
    sample = [row["image"] for row in world.read("caption")[:64]]
    cost["visual_tokens_per_image"] = sum(len(model.image_tokens.block(p)) for p in sample) / len(sample)
    logger.log_metrics({**cost, **zoo_metrics(cfg.encoder.name, workspace),
                        **zoo_metrics(cfg.llm.name, workspace, "llm")})
    if parallel.is_main():
        logger.log_metrics(unk_metrics(cfg, world, model.tokenizer))

    switches = resolve_switches(cfg.train, model.device)   # the speed path: `auto` is on with CUDA only
    optim, slots = stage_optimizer(cfg, model, switches["fused_adamw"])
    speed = apply_switches(model, cfg.train, switches)
    logger.log_params({f"speed/{name}": on for name, on in switches.items()})
    log.info("cell %s: speed path %s", cell.id, ", ".join(
        f"{name} {'on' if on else 'off'}" + (f" ({speed.done[name]})" if name in speed.done else "")
        for name, on in switches.items()))
    resumed = resume_state(workspace.checkpoints(cell.id) / "last", model, *slots)   # enters the stage it names
    state = resumed.state if resumed else TrainState()
    earlier_s = resumed.elapsed_s if resumed else 0.0   # earlier attempts, up to the checkpoint resumed from
    stages = plan(cfg.train) if cfg.train.stages else None
    if stages is not None:
        logger.set_tags({"ablate.stages": ", ".join(f"{s.name}: steps {s.start + 1}-{s.end}" for s in stages)})
    if state.step:
        log.info("cell %s resumes at step %d (stage %s)", cell.id, state.step, optim.stage.name)
        for step, loss in state.losses:   # the new run carries the whole curve
            logger.log_step(step, **step_metrics(stages, step, loss))
        logger.set_tags({"ablate.resumed_from_step": state.step})
    logger.log_metrics({"data/padding_fraction": padding_fraction(cfg, world, model)})
    train_started = time.monotonic()
    hooks = CellHooks(cell, model, logger, progress, workspace, elapsed=lambda: earlier_s + time.monotonic() - started)
    rows = parallel.shard(cfg.train.batch_size) if parallel.active() else None
    cost = TrainCost(model.image_token_id)
    with parallel.rank_failures_named():
        batches_for = batch_stream(stage_batches(cfg, world, model, rows=rows), cfg.train.grad_accum,
                                   model if switches["prefetch"] else None)
        try:
            state = train_stages(parallel.parallelize(model), cfg.train, optim, cost.counted(batches_for),
                                 cost.timed(hooks), state, slots)
        except Diverged as err:   # the loss that tripped the guard, beside the reason the runner records
            logger.log_metrics({"train/diverged_loss": err.loss, "train/diverged_step": float(err.step)})
            raise
        train_s = time.monotonic() - train_started
        logger.log_metrics(cost.metrics(train_s, model.device))   # all ranks: the counts are summed over them
    speed.undo()   # evaluation and the final checkpoint see the plain model (float32 frozen parts, eager blocks)
    main = parallel.is_main()
    parallel.leave()   # evaluation runs in rank 0 alone
    if not main:
        return {}
    logger.flush()
    save_checkpoint(workspace.checkpoints(cell.id) / "final", model, cfg)

    # evaluation: every (task, shots) the cell asks for, each tagged with its key (ablate.evaluation.keys), so that
    # a later change of tasks, shots or settings evaluates this final checkpoint again without training
    eval_started = time.monotonic()
    result = evaluate_model(model, cfg, world, workspace.checkpoints(cell.id) / "eval")
    eval_s = time.monotonic() - eval_started
    metrics = {**result.metrics, "time/train_s": train_s, "time/eval_s": eval_s,
               "wall_s": earlier_s + time.monotonic() - started,
               "train/final_loss": float(np.mean([loss for _, loss in state.losses[-10:]]))}
    if feature_cache is not None:
        metrics["feature_cache/hits"] = feature_cache.hits
    logger.log_metrics(metrics)
    if result.predictions:
        logger.log_table(result.predictions, "predictions.json")
    logger.set_tags({**result.tags, "ablate.checkpoint": str(workspace.checkpoints(cell.id) / "final")})
    return metrics


def prepare_assets(cells: list[Cell], workspace: Workspace, say=print) -> None:
    """Build once, before the first cell, what the cells share: the embedded worlds and the zoo backbones."""
    for world_cfg in {cell.config.data.world for cell in cells}:
        build_world(world_cfg, workspace.cache)
    specs = dict.fromkeys(spec for cell in cells for spec in (cell.config.encoder.name, cell.config.llm.name)
                          if Spec.parse(spec).family == "zoo")
    for spec in specs:
        if not (model_dir(spec, workspace.cache) / "zoo.json").is_file():
            say(f"installing {spec} (the weights shipped with ablate)" if shipped_folder(spec) else
                f"building {spec} (first use only: pretraining a tiny backbone on the embedded world)")
            ensure_built(spec, workspace.cache, log_fn=lambda text: say(f"    {text}"))


def zoo_metrics(spec: str, workspace: Workspace, part: str = "encoder") -> dict[str, float]:
    """A zoo backbone's pre-training figures, logged as `<part>/<name>`: an encoder's held-out image-caption
    retrieval and build time (`encoder/build_s`), an LM's held-out perplexity and build time (`llm/build_s`), and
    whether the weights are the ones shipped with ablate (`<part>/shipped`: 1, built by the maintainers)."""
    if Spec.parse(spec).family != "zoo":
        return {}
    folder = model_dir(spec, workspace.cache)
    marker = folder / "zoo.json"
    metrics = json.loads(marker.read_text()).get("metrics", {}) if marker.is_file() else {}
    out = {f"{part}/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    if out:   # build_s of shipped weights is the maintainers' build, not time spent here
        out[f"{part}/shipped"] = float(is_shipped_install(folder))
    return out


def unk_metrics(cfg: CellConfig, world, tokenizer) -> dict[str, float]:
    """The share of tokens the LLM's tokenizer cannot spell in each training kind and evaluation task
    (`data/<kind>/unk_share`, `eval/<task>/unk_share`; one warning line each above 2 %), on their first rows.
    A failure here never stops the cell (its data is read again, and refused with its reason, when it trains)."""
    try:
        return {**source_unk_metrics([stage.data(cfg.data) for stage in plan(cfg.train)], world, tokenizer),
                **task_unk_metrics(cfg.eval, world, tokenizer)}
    except Exception as err:  # noqa: BLE001 - a measurement, not worth failing the cell for
        log.warning("unknown-token shares not measured (%s: %s)", type(err).__name__, err)
        return {}


def padding_fraction(cfg, world, model, batches: int = 8) -> float:
    """Share of padding in the cell's first training batches (the cost of not packing; the first stage's data)."""
    stream = stage_batches(cfg, world, model)(plan(cfg.train)[0], 0)
    values = [batch.padding_fraction for batch in islice(stream, batches)]
    return float(sum(values) / max(len(values), 1))
