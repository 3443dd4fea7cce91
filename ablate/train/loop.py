"""The training loop, top to bottom. Logging, checkpoints and progress are handed in as hooks.

`train` runs one stage's steps with one optimiser; `train_stages` runs a cell's stages in order (docs/training.md):
at each stage boundary it enters the next stage (its optimiser, schedule and frozen modules) and its data.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import torch

from ablate.config.schema import TrainConfig
from ablate.config.stages import Stage, stage_at
from ablate.models.mllm import MLLM
from ablate.train import parallel
from ablate.train.parallel import labelled_tokens

if TYPE_CHECKING:   # ablate.data needs `datasets`; the loop itself does not (GPU benchmark machines lack it)
    from ablate.data import Batch


class Diverged(RuntimeError):
    """The loss became NaN/inf or blew up: the cell stops and is marked failed with the step and reason."""

    def __init__(self, step: int, reason: str, loss: float | None = None):
        super().__init__(f"diverged at step {step}: {reason}")
        self.step, self.reason, self.loss = step, reason, loss   # `loss`: the step's loss that tripped the guard


class Hooks(Protocol):
    def on_step(self, step: int, loss: float, lr: float) -> None: ...
    def on_checkpoint(self, step: int, state: dict) -> None: ...
    # optional: `on_stage(stage: Stage, step: int)` when a stage begins (or resumes) at global step `step`


@dataclass
class TrainState:
    """Everything needed to continue exactly: weights and optimiser live in `model`/`optimizer`."""

    step: int = 0
    losses: list[tuple[int, float]] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)   # processes of each attempt so far (checkpoints keep it)
    # where the data stream stands after the last step: `{"stage": name, "stream": IterableDataset.state_dict()}`
    data: dict | None = None


GUARD_WINDOW = 3   # the divergence guard judges the mean of this many latest losses of a stage, not one batch


def far_above(start: float) -> float:
    """The mean loss above which a cell has diverged, from its stage's first loss (a real LLM at too high a learning
    rate went 2.21 -> 10.07 in 7 steps; healthy training does not keep its loss above twice its start)."""
    return 2 * start + 2


class DivergenceGuard:
    """Stops a stage whose loss is NaN / inf (at once) or whose recent losses blow up (docs/training.md).

    One batch is not judged alone: a batch with a few labelled tokens (instruction rows with 1-3 answer tokens) is
    noisy (3.33, 4.95, 7.27, 3.85, 6.22, 13.32, then falling to 0.6, in a healthy LoRA cell at batch 2). The guard
    compares the mean of the last `GUARD_WINDOW` losses with the stage's first loss (more than 2x + 2 stops it), and
    after 20 steps with the best such mean so far (more than 10x + 5). Its state comes from the stage's losses, so
    a resumed cell keeps its reference."""

    def __init__(self, earlier: list[float]):
        self.start = earlier[0] if earlier else None
        self.recent = deque(earlier[-GUARD_WINDOW:], maxlen=GUARD_WINDOW)
        self.best = math.inf

    def check(self, step: int, value: float) -> None:
        if not math.isfinite(value):
            raise Diverged(step, f"loss is {value}", value)
        self.start = value if self.start is None else self.start
        self.recent.append(value)
        mean = sum(self.recent) / len(self.recent)
        said = f"the mean of the last {len(self.recent)} losses, {mean:.3g} (this step {value:.3g}),"
        if mean > far_above(self.start):
            raise Diverged(step, f"{said} is far above its starting value {self.start:.3g} (more than 2x + 2): the "
                                 "learning rate is likely too high (train.lr)", value)
        self.best = min(self.best, mean)
        if step > 21 and mean > 10 * self.best + 5:
            raise Diverged(step, f"{said} is more than 10x the best so far ({self.best:.3g})", value)


def autocast_for(device: torch.device, precision: str):
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def _forward(model, batch, device: torch.device, precision: str) -> torch.Tensor:
    with autocast_for(device, precision):
        # batches from ablate.train.speed.prefetch_batches carry their image features, made ahead; packed rows
        # (`data.packing`) their position ids; batches from loader workers (`data.workers`) their images' pixels
        positions = getattr(batch, "position_ids", None)
        packed = {} if positions is None else {"position_ids": positions.to(device)}
        pixels = getattr(batch, "pixel_values", None)
        pixels = torch.cat(pixels) if pixels else None
        return model(batch.input_ids.to(device), batch.attention_mask.to(device), batch.labels.to(device),
                     batch.images, pixel_values=pixels, features=getattr(batch, "features", None), **packed).loss


def micro_batches(batches: Iterator[Batch], count: int) -> Iterator[Batch]:
    """Each batch of `batches` as `count` micro-batches of consecutive rows (sizes differing by at most one), for
    `train.grad_accum`: what `train` takes `count` of per optimiser step. `count` 1: the batches themselves."""
    for batch in batches:
        if count == 1:
            yield batch
            continue
        size = batch.input_ids.shape[0]
        if size < count:
            raise ValueError(f"train.grad_accum {count} is more than the {size} rows of this process's share of "
                             "the batch: every micro-batch needs at least one row")
        ends = torch.cumsum(batch.n_images, 0).tolist()
        for part in range(count):
            rows = parallel.shard(size, part, count)
            first = ends[rows.start - 1] if rows.start else 0
            yield replace(batch, input_ids=batch.input_ids[rows], attention_mask=batch.attention_mask[rows],
                          labels=batch.labels[rows], images=batch.images[first:ends[rows.stop - 1]],
                          n_images=batch.n_images[rows], pixel_values=None if batch.pixel_values is None else
                          batch.pixel_values[first:ends[rows.stop - 1]],
                          position_ids=None if batch.position_ids is None else batch.position_ids[rows])


def train(model: MLLM, batches: Iterator[Batch], cfg: TrainConfig, optimizer, scheduler, hooks: Hooks,
          state: TrainState | None = None, until: int | None = None, saved=None, stage_start: int = 0) -> TrainState:
    """Steps until `until` (default: `cfg.steps`) of the stage that began after `stage_start` steps. Checkpoints
    every `cfg.checkpoint_every` global steps store `saved`, an (optimizer, scheduler) pair of objects with
    `state_dict` (default: `optimizer` and `scheduler` themselves)."""
    state = state or TrainState()
    until = cfg.steps if until is None else until
    device = model.device
    model.train()
    # the divergence guard's reference: the stage's first loss (kept across a resume); a new stage has its own, as
    # its data and loss mask may differ (an instruction stage starts on answer tokens alone, far above captions)
    guard = DivergenceGuard([v for s, v in state.losses if s > stage_start])
    accum = cfg.grad_accum
    while state.step < until:
        micro = [next(batches) for _ in range(accum)]
        if accum == 1:
            optimizer.zero_grad(set_to_none=True)
            loss = _forward(model, micro[0], device, cfg.precision)
            value = float(loss.detach())
            backward = loss.backward
        else:   # each micro-batch's mean loss weighted by its share of the step's labelled tokens (all ranks)
            counts = torch.stack([labelled_tokens(b.labels).to(device) for b in micro])
            if parallel.active():
                counts = parallel.all_reduce_sum(counts)
            weights = counts.to(torch.float64) / counts.sum().clamp_min(1)
            optimizer.zero_grad(set_to_none=True)
            value = 0.0
            for i, batch in enumerate(micro):   # DDP all-reduces the gradients once, after the last one
                with nullcontext() if i == accum - 1 else getattr(model, "no_sync", nullcontext)():
                    loss = _forward(model, batch, device, cfg.precision) * float(weights[i])
                    loss.backward()
                value += float(loss.detach())
            backward = None
        guard.check(state.step + 1, value)
        if backward is not None:
            backward()
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        state.step += 1
        state.losses.append((state.step, value))
        state.data = getattr(micro[-1], "data_state", None)   # the stream's position after this step's rows
        hooks.on_step(state.step, value, scheduler.get_last_lr()[0])
        if state.step % cfg.checkpoint_every == 0 and state.step < cfg.steps:
            hooks.on_checkpoint(state.step, {"optimizer": optimizer if saved is None else saved[0],
                                             "scheduler": scheduler if saved is None else saved[1], "state": state})
    model.eval()
    return state


def train_stages(model: MLLM, cfg: TrainConfig, optim, batches_for: Callable[[Stage, int], Iterator[Batch]],
                 hooks: Hooks, state: TrainState | None = None, slots=None) -> TrainState:
    """Every stage of `cfg` in order, from `state.step` on. `optim` (`ablate.train.optim.StageOptimizer`) holds the
    stage being trained; `batches_for(stage, steps_done_in_stage)` gives the stage's batches from that point;
    `slots`: what checkpoints store as (optimizer, scheduler) (default: `optim` and nothing)."""
    state = state or TrainState()
    slots = slots or (optim, None)
    on_stage = getattr(hooks, "on_stage", None)
    while state.step < cfg.steps:
        stage = stage_at(optim.stages, state.step)
        optim.enter(stage)   # a no-op when resumed inside this stage (the checkpoint already entered it)
        if on_stage is not None:
            on_stage(stage, state.step)
        state = train(model, batches_for(stage, state.step - stage.start), cfg, optim.optimizer, optim.scheduler,
                      hooks, state, until=stage.end, saved=slots, stage_start=stage.start)
    return state
