"""One cell, start to finish: build the model, train it, evaluate it, log it all to its run."""
from __future__ import annotations

import json
import logging
import random
import resource
import time
from dataclasses import replace

import numpy as np
import torch

from ablate import record
from ablate.checkpoint import resume_state, save_checkpoint
from ablate.config import fusion
from ablate.config.grid import Cell
from ablate.config.schema import CellConfig
from ablate.config.spec import Spec
from ablate.config.stages import Stage, plan, stage_at
from ablate.data import mixture_sources, train_batches
from ablate.data.vocabulary import source_unk_metrics
from ablate.evaluation import during
from ablate.evaluation.cells import evaluate_model
from ablate.evaluation.vocabulary import task_unk_metrics
from ablate.models.build import build_mllm
from ablate.models.connectors import count_parameters, forward_flops
from ablate.models.features import FeatureCache
from ablate.progress import Progress
from ablate.tracking.store import RunLogger
from ablate.train import parallel, sharded
from ablate.train.compute import StepCost, measure_step, mfu, steps_for
from ablate.train.loop import Diverged, TrainState, train_stages
from ablate.train.optim import SchedulerSlot, StageOptimizer
from ablate.train.speed import apply_switches, batch_stream, frozen_throughout, resolve_switches
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
                 elapsed=lambda: 0.0, stages: list[Stage] | None = None, world=None):
        """`stages`: the cell's `plan(cfg.train)`, made once by the caller (None: made here)."""
        self.cell, self.model, self.logger, self.progress, self.workspace = cell, model, logger, progress, workspace
        self.steps = cell.config.train.steps
        self.elapsed = elapsed   # seconds the cell has run, earlier attempts included (kept in the checkpoint)
        self.world = world       # for `eval.every`: the cell's tasks scored during training
        self.plan = stages or plan(cell.config.train)
        self.stages = self.plan if cell.config.train.stages else None   # None: metrics without stage names

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.logger.log_step(step, **step_metrics(self.stages, step, loss, lr))
        if self.world is not None and during.due(self.cell.config.eval, step, self.steps) and parallel.is_main():
            folder = self.workspace.checkpoints(self.cell.id) / "eval-during"
            self.logger.log_step(step, **during.evaluate_during(self.model, self.cell.config.eval, self.world, folder))
        if self.progress:
            self.progress.step(step, self.steps, loss)

    def on_stage(self, stage: Stage, step: int) -> None:
        if self.stages is not None:
            where = "begins" if step == stage.start else f"resumes at step {step - stage.start} of {stage.steps}"
            log.info("cell %s: stage %d/%d %r %s (global steps %d-%d)", self.cell.id, stage.index + 1,
                     len(self.stages), stage.name, where, stage.start + 1, stage.end)
            self.logger.set_tags({"ablate.stage": stage.name})

    def on_checkpoint(self, step: int, state: dict) -> None:
        """Rank 0 alone writes the checkpoint (the ranks hold the same state), or, with `train.parallel: fsdp`, every
        rank its shards; the ranks wait for each other around it with the checkpoint timeout (`checkpoint_barrier`),
        not in the next step's collective."""
        gather_data_state(state["state"])
        with sharded.checkpoint_barrier():
            if parallel.is_main() or self.cell.config.train.parallel == "fsdp":
                self._save(state)

    def _save(self, state: dict) -> None:
        if parallel.is_main():
            self.logger.flush()
        save_checkpoint(self.workspace.checkpoints(self.cell.id) / "last", self.model, self.cell.config,
                        state["state"], state["optimizer"], state["scheduler"], elapsed_s=self.elapsed(),
                        keep_previous=True, stages=self.plan)


def gather_data_state(state) -> None:
    """With `data.nodes` parts read by several processes, each holds the stream state of its own parts: gather
    them into every process's `state.data`, so the checkpoint rank 0 writes resumes every part (on any number of
    processes)."""
    data = getattr(state, "data", None)
    if not (parallel.active() and data and "nodes" in data.get("stream", {})):
        return
    every: list = [None] * parallel.world_size()
    torch.distributed.all_gather_object(every, data["stream"]["nodes"])
    state.data = {**data, "stream": {"nodes": {k: v for part in every for k, v in part.items()}}}


class SilentLogger:
    """What a rank other than 0 logs to: nothing (rank 0 alone writes the cell's run)."""

    run_id = None

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


class TrainCost:
    """What training a cell cost, logged as `cost/...`: samples/s and tokens/s (text and visual, all processes
    together), the median step time, peak memory (CUDA max allocated, or the process's peak RSS on the CPU: that of
    the largest process, `cost/peak_memory_gib`, and summed over the processes) and the number of processes.
    Counts the batches as they are drawn and times the steps as they are reported.

    The same batches give the data's measurements (`data_metrics`): the padding share of the first
    `PADDING_BATCHES` batches (`data/padding_fraction`) and the mean length of an image's token block over the
    first `BLOCK_IMAGES` images (`visual_tokens_per_image`; `block(path)`: the ids of one image's block). With
    `grad_accum` micro-batches per batch, the padding share is each batch's: that of its micro-batches together."""

    PADDING_BATCHES = 8
    BLOCK_IMAGES = 64

    def __init__(self, image_token_id: int, block=None, grad_accum: int = 1):
        self.image_token_id, self.block, self.grad_accum = image_token_id, block, grad_accum
        self.counts = torch.zeros(3, dtype=torch.float64)   # samples, text tokens, visual tokens (this process)
        self.padding: list[float] = []   # padding share of each of the first batches (this process)
        self._positions = [0, 0, 0]      # padding positions, positions, micro-batches of the batch being drawn
        self.blocks: list[int] = []      # token-block length of each of the first images (this process)
        self.step_s: list[float] = []
        self._last: float | None = None

    def counted(self, batches_for):
        def counting(stage: Stage, done: int):
            for batch in batches_for(stage, done):
                self.count(batch)
                yield batch
        return counting

    def count(self, batch) -> None:
        real = batch.attention_mask.bool()
        visual = int((batch.input_ids[real] == self.image_token_id).sum())
        self.counts += torch.tensor([batch.input_ids.shape[0], int(real.sum()) - visual, visual])
        if len(self.padding) < self.PADDING_BATCHES:
            mask = batch.attention_mask
            self._positions = [self._positions[0] + mask.numel() - int(mask.sum()),
                               self._positions[1] + mask.numel(), self._positions[2] + 1]
            if self._positions[2] == self.grad_accum:
                self.padding.append(self._positions[0] / max(self._positions[1], 1))
                self._positions = [0, 0, 0]
        if self.block is not None and len(self.blocks) < self.BLOCK_IMAGES:
            self.blocks += [len(self.block(p)) for p in batch.images[:self.BLOCK_IMAGES - len(self.blocks)]]

    def tick(self) -> None:
        """A step was reported: the time since the previous one is a step's time."""
        now = time.monotonic()
        if self._last is not None:
            self.step_s.append(now - self._last)
        self._last = now

    def timed(self, hooks) -> Timed:
        """`hooks` with each `on_step` timed first (the hooks object itself is left as it is)."""
        return Timed(hooks, self.tick)

    def data_metrics(self) -> dict[str, float]:
        """`data/padding_fraction` and `visual_tokens_per_image` of the batches drawn so far (all processes)."""
        sums = torch.tensor([sum(self.padding), len(self.padding), sum(self.blocks), len(self.blocks)],
                            dtype=torch.float64)
        if parallel.active():
            torch.distributed.all_reduce(sums)
        padding, batches, blocks, images = (float(v) for v in sums)
        out = {"data/padding_fraction": padding / max(batches, 1.0)}
        if images:
            out["visual_tokens_per_image"] = blocks / images
        return out

    def metrics(self, train_s: float, device: torch.device) -> dict[str, float]:
        counts = self.counts.clone()
        if parallel.active():
            torch.distributed.all_reduce(counts)
        samples, text, visual = (float(c) for c in counts)
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**30
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB on Linux
        largest = total = peak
        if parallel.active():   # every process's peak: the largest (what must fit per GPU) and their sum
            peaks = [None] * parallel.world_size()
            torch.distributed.all_gather_object(peaks, peak)
            largest, total = max(peaks), sum(peaks)
        per_s = 1.0 / max(train_s, 1e-9)
        return {"cost/samples_per_s": samples * per_s, "cost/tokens_per_s": (text + visual) * per_s,
                "cost/text_tokens_per_s": text * per_s, "cost/visual_tokens_per_s": visual * per_s,
                "cost/step_s_median": float(np.median(self.step_s)) if self.step_s else train_s,
                "cost/peak_memory_gib": largest, "cost/peak_memory_gib_all_processes": total,
                "cost/processes": float(parallel.world_size())}


class Timed:
    """Hooks whose `on_step` calls `tick()` first; every other hook is the wrapped object's."""

    def __init__(self, hooks, tick):
        self.hooks, self.tick = hooks, tick

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.tick()
        self.hooks.on_step(step, loss, lr)

    def __getattr__(self, name: str):
        return getattr(self.hooks, name)


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


def stage_batches(cfg: CellConfig, world, model, cache_dir=None, rows: slice | None = None,
                  resume: dict | None = None):
    """`(stage, steps done in it) -> its batches from there on`: the stage's data and data-order seed; `rows`:
    this process's share of each global batch when several train the cell (`ablate.train.parallel.shard`);
    `resume`: a checkpoint's `TrainState.data`, where the stream of the stage it names stood (the stream goes on
    from there instead of skipping the rows before). Each batch's `data_state` names its stage."""
    def batches_for(stage: Stage, done: int):
        at = resume["stream"] if resume and done and resume.get("stage") == stage.name else None
        data = stage.data(cfg.data)
        # with loader workers the sources are opened here, once, and the workers iterate them
        sources = mixture_sources(data, world, cache_dir) if data.workers else None

        def make(data_state, start_step, keep=None):
            return train_batches(data, world, model.tokenizer, model.image_tokens, cfg.train.batch_size,
                                 stage.seed(cfg.train.seed), start_step=start_step, cache_dir=cache_dir, rows=rows,
                                 data_state=data_state, keep=keep, sources=sources)

        if data.workers:   # loader processes make the batches, images decoded into pixels there
            from ablate.data.workers import loader_batches
            batches = loader_batches(make, data.workers, model.encoder.preprocess, model.device.type == "cuda",
                                     start_step=done, data_state=at)
        else:
            batches = make(at, done)
        for batch in batches:
            batch.data_state = {"stage": stage.name, "stream": batch.data_state}
            yield batch

    return batches_for


def stage_optimizer(cfg: CellConfig, model, fused: bool | None = None, stages: list[Stage] | None = None
                    ) -> tuple[StageOptimizer, tuple]:
    """The stages' optimiser (first stage entered) and what checkpoints store as (optimizer, scheduler);
    `fused`: AdamW's fused kernel (`train.fused_adamw`; None: on CUDA); `stages`: `plan(cfg.train)`, if made."""
    optim = StageOptimizer(model, cfg.train, fused, stages)
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
    stages = plan(cfg.train)   # made once: every part below that asks what trains when gets this list
    named = stages if cfg.train.stages else None   # a cell without `train.stages` logs no stage names
    model = build_mllm(cfg, workspace.cache, feature_cache, stages=stages)
    step_cost = measure_step(model, next(iter(stage_batches(cfg, world, model)(stages[0], 0))))
    if cfg.train.budget is not None:   # the steps the budget buys, from the step just counted
        cell = spend_budget(cell, step_cost, logger)
        cfg, stages = cell.config, plan(cell.config.train)
    logger.log_metrics({"connector_params": count_parameters(model.connector),
                        "connector_flops": forward_flops(model.connector, model.encoder.dim, model.encoder.grid),
                        **zoo_metrics(cfg.encoder.name, workspace), **zoo_metrics(cfg.llm.name, workspace, "llm")})
    if parallel.is_main():
        logger.log_metrics(unk_metrics(cfg, world, model.tokenizer, stages))
        log_record(cfg, world, workspace, logger)

    switches = resolve_switches(cfg.train, model.device)   # the speed path: `auto` is on with CUDA only
    fsdp = cfg.train.parallel == "fsdp" and parallel.active()
    if fsdp:   # FSDP2 shards in place, after the speed path (torchtitan's order) and before the optimiser is built
        speed = apply_switches(model, cfg.train, switches, stages)
        log.info("cell %s: FSDP2 over %d processes: %s", cell.id, parallel.world_size(),
                 ", ".join(parallel.shard_model(model, set(frozen_throughout(model, stages)))))
    optim, slots = stage_optimizer(cfg, model, switches["fused_adamw"], stages)
    if not fsdp:
        speed = apply_switches(model, cfg.train, switches, stages)
    logger.log_params({f"speed/{name}": on for name, on in switches.items()})
    log.info("cell %s: speed path %s", cell.id, ", ".join(
        f"{name} {'on' if on else 'off'}" + (f" ({speed.done[name]})" if name in speed.done else "")
        for name, on in switches.items()))
    resumed = resume_state(workspace.checkpoints(cell.id) / "last", model, *slots)   # enters the stage it names
    state = resumed.state if resumed else TrainState()
    earlier_s = resumed.elapsed_s if resumed else 0.0   # earlier attempts, up to the checkpoint resumed from
    if named is not None:
        logger.set_tags({"ablate.stages": ", ".join(f"{s.name}: steps {s.start + 1}-{s.end}" for s in named)})
    if state.step:
        log.info("cell %s resumes at step %d (stage %s)", cell.id, state.step, optim.stage.name)
        for step, loss in state.losses:   # the new run carries the whole curve
            logger.log_step(step, **step_metrics(named, step, loss))
        logger.set_tags({"ablate.resumed_from_step": state.step})
    state.processes.append(parallel.world_size())   # this attempt's; the checkpoint carries the earlier ones'
    logger.set_tags({"ablate.processes_per_attempt": ",".join(map(str, state.processes))})
    first_step = state.step
    train_started = time.monotonic()
    hooks = CellHooks(cell, model, logger, progress, workspace, elapsed=lambda: earlier_s + time.monotonic() - started,
                      stages=stages, world=world)
    rows = parallel.shard(cfg.train.batch_size) if parallel.active() else None
    cost = TrainCost(model.image_token_id, model.image_tokens.block, cfg.train.grad_accum)
    with parallel.rank_failures_named():
        batches_for = batch_stream(stage_batches(cfg, world, model, rows=rows, resume=state.data),
                                   cfg.train.grad_accum, model if switches["prefetch"] else None)
        try:
            trained = parallel.parallelize(model, cfg.train.parallel, parallel.needs_unused_parameters(
                [stage.data(cfg.data) for stage in stages]))
            state = train_stages(trained, cfg.train, optim, cost.counted(batches_for),
                                 cost.timed(hooks), state, slots)
        except Diverged as err:   # the loss that tripped the guard, beside the reason the runner records
            logger.log_metrics({"train/diverged_loss": err.loss, "train/diverged_step": float(err.step)})
            raise
        train_s = time.monotonic() - train_started
        logger.log_metrics({**cost.metrics(train_s, model.device), **cost.data_metrics()})   # all ranks: summed
        logger.log_metrics(compute_metrics(step_cost, cfg.train.steps, state.step - first_step, train_s, model.device))
    if fsdp:   # the sharded weights gathered (all ranks); rank 0 evaluates them in a plain model built anew
        full = sharded.full_weights(model)
        model = build_mllm(cfg, workspace.cache, feature_cache, stages=stages) if parallel.is_main() else None
        if model is not None:
            model.load_state_dict(full)
    else:
        speed.undo()   # evaluation and the final checkpoint see the plain model (float32 frozen parts, eager blocks)
    main = parallel.is_main()
    parallel.leave()   # evaluation runs in rank 0 alone
    if not main:
        return {}
    logger.flush()
    save_checkpoint(workspace.checkpoints(cell.id) / "final", model, cfg, stages=stages)

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
    if result.questions:
        logger.log_table(result.questions, "questions.json")   # every question: the report's paired intervals
    logger.set_tags({**result.tags, "ablate.checkpoint": str(workspace.checkpoints(cell.id) / "final")})
    return metrics


def prepare_assets(cells: list[Cell], workspace: Workspace, say=print) -> None:
    """Build once, before the first cell, what the cells share: the embedded worlds and the zoo backbones."""
    for world_cfg in {cell.config.data.world for cell in cells}:
        build_world(world_cfg, workspace.cache)
    specs = dict.fromkeys(spec for cell in cells
                          for spec in (*fusion.member_names(cell.config.encoder.name), cell.config.llm.name)
                          if Spec.parse(spec).family == "zoo")
    for spec in specs:
        if not (model_dir(spec, workspace.cache) / "zoo.json").is_file():
            say(f"installing {spec} (the weights shipped with ablate)" if shipped_folder(spec) else
                f"building {spec} (first use only: pretraining a tiny backbone on the embedded world)")
            ensure_built(spec, workspace.cache, log_fn=lambda text: say(f"    {text}"))


def log_record(cfg: CellConfig, world, workspace: Workspace, logger: RunLogger) -> None:
    """The run record (`ablate.record`): `run_record.json` and its `ablate.env.*` / `mlflow.source.git.commit` tags.
    A failure here never stops the cell (it is logged as a warning)."""
    try:
        rec = record.collect(cfg, world, workspace.cache)
    except Exception as err:  # noqa: BLE001 - the record explains a run; it must not cost one
        log.warning("cell: the run record was not collected (%s: %s)", type(err).__name__, err)
        return
    logger.set_tags(record.tags(rec))
    logger.log_dict(rec, record.RECORD_FILE)


def zoo_metrics(spec: str, workspace: Workspace, part: str = "encoder") -> dict[str, float]:
    """A zoo backbone's pre-training figures, logged as `<part>/<name>`: an encoder's held-out image-caption
    retrieval and build time (`encoder/build_s`), an LM's held-out perplexity and build time (`llm/build_s`), and
    whether the weights are the ones shipped with ablate (`<part>/shipped`: 1, built by the maintainers)."""
    if fusion.SEPARATOR in spec:   # a fused encoder: its encoders' figures are their own cells' (one row each)
        return {}
    if Spec.parse(spec).family != "zoo":
        return {}
    folder = model_dir(spec, workspace.cache)
    marker = folder / "zoo.json"
    metrics = json.loads(marker.read_text()).get("metrics", {}) if marker.is_file() else {}
    out = {f"{part}/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    if out:   # build_s of shipped weights is the maintainers' build, not time spent here
        out[f"{part}/shipped"] = float(is_shipped_install(folder))
    return out


def unk_metrics(cfg: CellConfig, world, tokenizer, stages: list[Stage] | None = None) -> dict[str, float]:
    """The share of tokens the LLM's tokenizer cannot spell in each training kind and evaluation task
    (`data/<kind>/unk_share`, `eval/<task>/unk_share`; one warning line each above 2 %), on their first rows.
    A failure here never stops the cell (its data is read again, and refused with its reason, when it trains)."""
    try:
        stages = stages or plan(cfg.train)
        return {**source_unk_metrics([stage.data(cfg.data) for stage in stages], world, tokenizer),
                **task_unk_metrics(cfg.eval, world, tokenizer)}
    except Exception as err:  # noqa: BLE001 - a measurement, not worth failing the cell for
        log.warning("unknown-token shares not measured (%s: %s)", type(err).__name__, err)
        return {}


def spend_budget(cell: Cell, step: StepCost, logger: RunLogger) -> Cell:
    """The cell with the steps its `train.budget` buys (a budget in samples set them already; tokens and FLOPs
    from `step`, the cell's first step as counted): logged as the parameter `train/steps`."""
    budget = cell.config.train.budget
    steps = steps_for(budget, cell.config.train.batch_size, step)
    logger.log_params({"train/steps": steps, "train/budget": f"{budget.quantity} {budget.amount:g}"})
    log.info("cell %s: a budget of %g %s buys %d steps", cell.id, budget.amount, budget.quantity, steps)
    train = cell.config.train.model_copy(update={"steps": steps})
    return replace(cell, config=cell.config.model_copy(update={"train": train}))


def compute_metrics(step: StepCost, steps: int, trained: int, train_s: float, device) -> dict[str, float]:
    """The cell's training compute (`StepCost.metrics` over its steps) and, on a GPU of known peak, its model
    FLOPs utilisation over the steps this attempt trained (`cost/mfu`)."""
    out = step.metrics(steps)
    utilisation = mfu(step.flops * trained, train_s, device) if trained else None
    if utilisation is not None:
        out["cost/mfu"] = utilisation
    return out
