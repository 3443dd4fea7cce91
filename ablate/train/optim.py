"""Optimiser and schedule. One mechanism for freezing and for per-module learning rates: a multiplier of 0 freezes."""
from __future__ import annotations

import logging

import torch
from transformers import get_cosine_schedule_with_warmup

from ablate.config.schema import TrainConfig
from ablate.models.mllm import MLLM

log = logging.getLogger(__name__)


def param_groups(model: MLLM, cfg: TrainConfig) -> list[dict]:
    """One AdamW group per trained module; modules with multiplier 0 get requires_grad=False."""
    groups = []
    for name, module in vars(model.parts()).items():
        multiplier = cfg.lr_multipliers.get(name, 1.0)
        params = list(module.parameters())
        for p in params:
            p.requires_grad_(multiplier > 0)
        if multiplier > 0 and params:
            decay = [p for p in params if p.ndim >= 2]
            no_decay = [p for p in params if p.ndim < 2]
            groups.append({"name": name, "params": decay, "lr": cfg.lr * multiplier, "weight_decay": cfg.weight_decay})
            groups.append({"name": f"{name}.no_decay", "params": no_decay, "lr": cfg.lr * multiplier,
                           "weight_decay": 0.0})
        log.info("%s: %s (%d params, lr x %g)", name, "trains" if multiplier > 0 else "frozen",
                 sum(p.numel() for p in params), multiplier)
    return [g for g in groups if g["params"]]


def build_optimizer(model: MLLM, cfg: TrainConfig):
    groups = param_groups(model, cfg)
    if not groups:
        raise ValueError("train.lr_multipliers freezes every module: nothing would train")
    fused = torch.cuda.is_available() and next(model.parameters()).is_cuda
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=fused or None)
    warmup = int(round(cfg.warmup_ratio * cfg.steps))
    scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=cfg.steps)
    return optimizer, scheduler
