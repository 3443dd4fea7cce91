"""A cell's training stages, resolved: what each stage trains, at what learning rate, on what data, over which steps.

`plan(train)` is the one place that says what is frozen when: the optimiser (`ablate.train.optim`), the model
builder's feature-cache flag (`ablate.models.build`) and the checkpoint's list of stored modules
(`ablate.checkpoint`) all ask `Stage.trains` / `trains_in_any_stage`. `train.lr_multipliers` always names every
module (a partial mapping is merged over the defaults of the cell's backbones: `ablate.config.defaults`). A cell
without `train.stages` is one stage named `train` with the cell's own settings.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ablate.config.schema import SEED_MAX, DataConfig, TrainConfig

MODULES: tuple[str, ...] = ("encoder", "connector", "llm")
ONE_STAGE = "train"   # the name of the one stage of a cell without `train.stages`


@dataclass(frozen=True)
class Stage:
    """One stage with every setting filled in; `start` and `end` are global step counts (steps `start + 1` to
    `end` belong to it)."""

    index: int
    name: str
    start: int
    steps: int
    lr: float
    warmup_ratio: float
    weight_decay: float
    lr_multipliers: dict
    mixture: dict | None    # None: the cell's data.mixture
    sources: list | None    # None: the cell's data.sources

    @property
    def end(self) -> int:
        return self.start + self.steps

    def multiplier(self, module: str) -> float:
        return float(self.lr_multipliers.get(module, 1.0))

    def trains(self, module: str) -> bool:
        """Whether `module` (encoder / connector / llm) learns in this stage (a multiplier of 0 freezes it)."""
        return self.multiplier(module) > 0

    def data(self, data: DataConfig) -> DataConfig:
        """The cell's data config with this stage's mixture and sources."""
        update = {k: v for k, v in (("mixture", self.mixture), ("sources", self.sources)) if v is not None}
        return data.model_copy(update=update) if update else data

    def seed(self, seed: int) -> int:
        """The data-order seed of this stage: the cell's for the first stage (so a cell without stages sees the
        batches it always did), one derived from it and the stage's position for the others."""
        if self.index == 0:
            return seed
        digest = hashlib.sha256(f"{seed}|stage|{self.index}".encode()).digest()
        return int.from_bytes(digest[:4], "big") % (SEED_MAX + 1)


def plan(train: TrainConfig) -> list[Stage]:
    """The stages in order (one named `train` for a cell without `train.stages`)."""
    if not train.stages:
        return [Stage(0, ONE_STAGE, 0, train.steps, train.lr, train.warmup_ratio, train.weight_decay,
                      dict(train.lr_multipliers), None, None)]
    out, start = [], 0
    for index, stage in enumerate(train.stages):
        data = stage.data
        out.append(Stage(
            index=index, name=stage.name, start=start, steps=stage.steps,
            lr=train.lr if stage.lr is None else stage.lr,
            warmup_ratio=train.warmup_ratio if stage.warmup_ratio is None else stage.warmup_ratio,
            weight_decay=train.weight_decay,
            lr_multipliers={**train.lr_multipliers, **(stage.lr_multipliers or {})},
            mixture=dict(data.mixture) if data is not None and data.mixture is not None else None,
            sources=list(data.sources) if data is not None and data.sources is not None else None,
        ))
        start += stage.steps
    return out


def stage_at(stages: list[Stage], step: int) -> Stage:
    """The stage that trains step `step + 1` (after `step` steps are done); the last stage once all are done."""
    for stage in stages:
        if step < stage.end:
            return stage
    return stages[-1]


def trains_in_any_stage(train: TrainConfig | list[Stage], module: str) -> bool:
    """Whether `module` learns in some stage (`train`: a `TrainConfig`, or its stages as `plan` made them): its
    weights belong in checkpoints, and a frozen encoder's features can be cached only if it never trains."""
    stages = plan(train) if isinstance(train, TrainConfig) else train
    return any(stage.trains(module) for stage in stages)
