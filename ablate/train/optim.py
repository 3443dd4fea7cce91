"""Optimiser and schedule. One mechanism for freezing and for per-module learning rates: a multiplier of 0 freezes.

Each training stage (`ablate.config.stages`) gets its own AdamW and warm-up + cosine schedule over its own steps;
`StageOptimizer` holds the current one and names its stage in checkpoints, so a resumed cell continues inside the
stage it was killed in.
"""
from __future__ import annotations

import logging
import math
from functools import partial

import torch

from ablate.config.schema import TrainConfig
from ablate.config.stages import Stage, plan
from ablate.models.llm import has_adapters, trained_parameters
from ablate.models.mllm import MLLM

log = logging.getLogger(__name__)


def param_groups(model: MLLM, stage: Stage | TrainConfig) -> list[dict]:
    """One AdamW group per trained module; modules the stage freezes get requires_grad=False."""
    stage = plan(stage)[0] if isinstance(stage, TrainConfig) else stage
    groups = []
    for name, module in vars(model.parts()).items():
        multiplier = stage.multiplier(name)
        for p in module.parameters():
            p.requires_grad_(False)
        params = list(trained_parameters(module).values())   # an LLM with LoRA: its adapters only
        for p in params:
            p.requires_grad_(stage.trains(name))
        if stage.trains(name) and params:
            decay = [p for p in params if p.ndim >= 2]
            no_decay = [p for p in params if p.ndim < 2]
            groups.append({"name": name, "params": decay, "lr": stage.lr * multiplier,
                           "weight_decay": stage.weight_decay})
            groups.append({"name": f"{name}.no_decay", "params": no_decay, "lr": stage.lr * multiplier,
                           "weight_decay": 0.0})
        log.info("stage %s: %s %s (%d params%s, lr %g = %g x %g)", stage.name, name,
                 "trains" if stage.trains(name) else "frozen", sum(p.numel() for p in params),
                 " of LoRA adapters, base frozen" if has_adapters(module) else "",
                 stage.lr * multiplier, stage.lr, multiplier)
    return [g for g in groups if g["params"]]


def build_optimizer(model: MLLM, cfg: TrainConfig | Stage, fused: bool | None = None):
    """AdamW and its warm-up + cosine schedule for one stage (a `TrainConfig`: its first, or only, stage).
    `fused`: AdamW's fused kernel (`train.fused_adamw`); None: on when the model is on CUDA."""
    stage = plan(cfg)[0] if isinstance(cfg, TrainConfig) else cfg
    groups = param_groups(model, stage)
    if not groups:
        raise ValueError(f"stage {stage.name}: train.lr_multipliers freezes every module: nothing would train")
    on_cuda = torch.cuda.is_available() and next(model.parameters()).is_cuda
    fused = on_cuda if fused is None else fused and on_cuda   # the fused kernel needs CUDA tensors
    optimizer = torch.optim.AdamW(groups, lr=stage.lr, betas=(0.9, 0.95), fused=fused or None)
    warmup = int(round(stage.warmup_ratio * stage.steps))
    scheduler = cosine_with_warmup(optimizer, warmup, stage.steps)
    return optimizer, scheduler


def cosine_with_warmup(optimizer, warmup: int, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0, then a half cosine to 0: transformers' `get_cosine_schedule_with_warmup`, value for
    value (tests/test_schedule.py), without its import, which loads `transformers.trainer_utils` and peft
    (5-10 s in every cell's process on 2 CPU cores). A `partial` of a module function, as transformers builds it, so
    checkpoints written before keep loading."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(_cosine_factor, warmup=warmup, steps=steps))


def _cosine_factor(step: int, *, warmup: int, steps: int) -> float:
    if step < warmup:
        return float(step) / float(max(1, warmup))
    progress = float(step - warmup) / float(max(1, steps - warmup))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


class StageOptimizer:
    """The optimiser and schedule of the stage being trained, rebuilt when a stage begins.

    Checkpoints store `state_dict()`, which names the stage; `load_state_dict` enters that stage first, so the
    optimiser state always lands in an optimiser of the same stage. (A bare AdamW state dict, from a checkpoint
    written before stages existed, is the first stage's.)"""

    def __init__(self, model: MLLM, cfg: TrainConfig, fused: bool | None = None, stages: list[Stage] | None = None):
        """`stages`: `plan(cfg)`, when the caller has made it."""
        self.model, self.stages, self.fused = model, stages or plan(cfg), fused
        self.stage: Stage | None = None
        self.optimizer = self.scheduler = None
        self.enter(self.stages[0])

    def enter(self, stage: Stage) -> None:
        if stage is not self.stage:
            self.stage = stage
            self.optimizer, self.scheduler = build_optimizer(self.model, stage, self.fused)

    def state_dict(self) -> dict:
        return {"stage": self.stage.name, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if "stage" not in state:            # a plain optimiser state: the first stage's
            state = {"stage": self.stages[0].name, "optimizer": state, "scheduler": None}
        named = {s.name: s for s in self.stages}
        if state["stage"] not in named:
            raise ValueError(f"the checkpoint was taken in stage {state['stage']!r}, which this cell does not have "
                             f"(stages: {', '.join(named)})")
        self.enter(named[state["stage"]])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])


class SchedulerSlot:
    """What a checkpoint stores as the scheduler of a `StageOptimizer`: the legacy slot, filled by the optimizer's
    state (which holds its stage's schedule). Loads a legacy checkpoint's schedule into the first stage."""

    def __init__(self, stages: StageOptimizer):
        self.stages = stages

    def state_dict(self) -> None:
        return None

    def load_state_dict(self, state) -> None:
        if state is not None:
            self.stages.scheduler.load_state_dict(state)
