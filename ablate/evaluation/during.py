"""Scores over training (`eval.every`): a cell's tasks evaluated 0-shot on their first `eval.every_limit`
questions every `eval.every` steps, logged as step metrics `during/<task>/0shot` (the report's score-vs-step
curves). The weights evaluated are those the step ends with (what its checkpoint holds); training goes on exactly as
without it: the model is put back in training mode and the random state as it was (lmms-eval is told not to seed)."""
from __future__ import annotations

from pathlib import Path

import torch

from ablate.evaluation.runner import evaluate

PREFIX = "during/"


def settings(cfg):
    """The `EvalConfig` a mid-training evaluation runs with: the cell's tasks, 0-shot, on `every_limit` questions
    (fewer where `limit` asks fewer), no interval, no blind copy, no perplexity, no predictions kept."""
    limit = cfg.every_limit if cfg.limit is None else min(cfg.limit, cfg.every_limit)
    update = {"shots": [0], "limit": limit, "bootstrap": 0, "text_perplexity": 0, "n_predictions": 0, "blind": False}
    return cfg.model_copy(update={k: v for k, v in update.items() if k in type(cfg).model_fields})


def due(cfg, step: int, steps: int) -> bool:
    """Whether step `step` of `steps` is evaluated: every `eval.every` steps, not the last (the final evaluation
    scores it in full)."""
    return bool(cfg.every) and step % cfg.every == 0 and step < steps


def evaluate_during(model, cfg, world, out_dir: Path) -> dict[str, float]:
    """`during/<task>/0shot` for each task of `cfg` (an `EvalConfig`), on `model` as it is now."""
    sub = settings(cfg)
    cpu_rng = torch.random.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = model.training
    try:
        model.eval()
        result = evaluate(model, sub, world, out_dir, only={(task, 0) for task in sub.tasks})
    finally:
        model.train(was_training)
        torch.random.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    return {PREFIX + t.key: t.overall.score for t in result.tasks}
