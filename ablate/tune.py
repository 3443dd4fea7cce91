"""`ablate tune GRID`: a short Optuna search of the learning rate (and optionally the warmup) per value of an axis.

MM1 (McKinzie et al., 2024) tunes the learning rate for each setting before comparing settings, so that one
connector is not judged at another's best rate. For each value of `per` (default `connector.name`), the first cell
of the grid with that value is trained for its usual steps (or `steps`) at each trial's rate and scored by the mean
0-shot score (`objective="score"`, maximised) or the final training loss (`objective="loss"`, minimised).

- Sampler: TPE (Bergstra et al., 2011), seeded. Storage: Optuna's RDBStorage on `<home>/optuna.db` (its own
  sqlite file: never the MLflow one), with heartbeats: a trial whose process was killed is found stale and re-run
  with the same parameters (it is the same cell, so it resumes from its checkpoint). `load_if_exists=True`: running
  the command again continues each study up to `trials` finished trials.
- Each trial is an MLflow run in the experiment `<grid name>-tune` (logged directly, not through MLflowCallback).
- The result: `<grid>.tuned.yaml` next to the grid file, the same grid (name `<name>-tuned`) with every cell
  pinned to the best `train.lr` (and `train.warmup_ratio`) of its `per` value, through `exclude`/`include`.
  Run it with `ablate run <grid>.tuned.yaml`; docs/runners.md ("tune").
"""
from __future__ import annotations

import dataclasses
import logging
import math
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path

import yaml

from ablate.config.errors import GridError
from ablate.config.grid import Cell, Grid
from ablate.resolve import make_cell
from ablate.runners.protocol import Terminated
from ablate.workspace import Workspace

log = logging.getLogger(__name__)

ZERO_SHOT = re.compile(r"^score/[^/]+/0shot$")
LR_RANGE = (1e-5, 3e-2)
WARMUP_RANGE = (0.0, 0.2)


def tune_grid(grid: Grid, workspace: Workspace, trials: int = 8, per: str = "connector.name",
              objective: str = "score", steps: int | None = None, warmup: bool = False,
              heartbeat_s: int = 30, grace_s: int | None = None, out: Path | None = None) -> int:
    """Tune each value of `per`, write `<grid>.tuned.yaml`; returns 0 (the CLI's exit code)."""
    if objective not in ("score", "loss"):
        raise GridError(grid.path, f"unknown objective {objective!r}", key="--objective", allowed=["score", "loss"],
                        got=objective)
    groups = representatives(grid, per)
    study_storage = storage(workspace, heartbeat_s, grace_s)
    best: dict[str, dict] = {}
    for label, cell in groups.items():
        study = tune_cell(grid, cell, workspace, f"{grid.name}/{per}={label}", study_storage, trials, objective,
                          steps, warmup)
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        if not done:
            print(f"{per}={label}: no trial completed (all diverged or failed); keeping lr {cell.config.train.lr:g}")
            continue
        best[str(label)] = dict(study.best_params)
        print(f"{per}={label}: best {_fmt(study.best_params)} ({objective} {study.best_value:.4g}, "
              f"{len(done)} trials)")
    path = write_tuned_grid(grid, per, best, out, note=f"Optuna TPE, {trials} trials per value, objective "
                                                      f"{objective}, storage {workspace.home / 'optuna.db'}")
    print(f"tuned grid: {path}  (ablate run {path})")
    return 0


def representatives(grid: Grid, per: str) -> dict[str, Cell]:
    """The first cell of each value of the axis `per` (the whole grid is one group if `per` is 'none')."""
    if per == "none":
        return {"all": grid.cells[0]}
    if per not in grid.axes:
        raise GridError(grid.path, "ablate tune --per must name a swept axis of the grid", key=per,
                        allowed=[*grid.axes, "none"], got=per)
    groups: dict[str, Cell] = {}
    for cell in grid.cells:
        groups.setdefault(str(cell.axes[per]), cell)
    return groups


def storage(workspace: Workspace, heartbeat_s: int = 30, grace_s: int | None = None):
    import optuna  # lazy: optuna (~1 s) only for `ablate tune`; the CLI imports this module for every command

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)   # heartbeats are "experimental"

    callback = (optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)
                if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
                else optuna.storages.RetryFailedTrialCallback(max_retry=2))
    key = ("heartbeat_stale_trial_callback" if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
           else "failed_trial_callback")
    return optuna.storages.RDBStorage(f"sqlite:///{workspace.home / 'optuna.db'}", heartbeat_interval=heartbeat_s,
                                      grace_period=grace_s or 3 * heartbeat_s, **{key: callback})


def tune_cell(grid: Grid, cell: Cell, workspace: Workspace, name: str, study_storage, trials: int, objective: str,
              steps: int | None, warmup: bool):
    import optuna  # lazy: as in storage()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=study_storage, load_if_exists=True,
                                direction="maximize" if objective == "score" else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=0))
    optuna.storages.fail_stale_trials(study)   # a trial a killed process left RUNNING: failed, queued again
    finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    waiting = sum(t.state.name == "WAITING" for t in study.trials)    # stale trials queued again
    remaining = max(0, trials - finished, waiting)
    if remaining:
        study.optimize(lambda trial: run_trial(trial, grid, cell, workspace, objective, steps, warmup),
                       n_trials=remaining, catch=(), gc_after_trial=True)
    return study


def run_trial(trial, grid: Grid, cell: Cell, workspace: Workspace, objective: str, steps: int | None,
              warmup: bool) -> float:
    """Train the cell at the trial's rate; its MLflow run carries the trial's parameters and value."""
    import optuna  # lazy: as in storage()

    # lazy: the training stack (torch) only once a trial runs
    from ablate.cell import run_cell
    from ablate.runners.local import open_store
    from ablate.train.loop import Diverged

    train = {"lr": trial.suggest_float("lr", *LR_RANGE, log=True)}
    if warmup:
        train["warmup_ratio"] = trial.suggest_float("warmup_ratio", *WARMUP_RANGE)
    if steps:
        train["steps"] = steps
    config = cell.config.model_copy(update={"train": cell.config.train.model_copy(update=train)})
    config = type(config).model_validate(config.model_dump())            # re-validate (and a new cell id)
    trial_cell = make_cell(config, {**cell.axes, **{f"train.{k}": v for k, v in train.items()}})
    tune_grid_ = dataclasses.replace(grid, name=f"{grid.name}-tune")
    store, experiment = open_store(workspace, tune_grid_)
    store.close_stale(experiment, trial_cell.id)
    logger = store.start_run(experiment, tune_grid_, trial_cell)
    logger.set_tags({"ablate.tune.study": trial.study.study_name, "ablate.tune.trial": trial.number})
    try:
        metrics = run_cell(trial_cell, workspace, logger)
    except Diverged as err:
        logger.finish("FAILED", str(err))
        raise optuna.TrialPruned(str(err)) from None
    except (KeyboardInterrupt, Terminated):   # Ctrl-C, or SIGTERM (the CLI turns it into Terminated)
        logger.finish("KILLED", "interrupted")
        raise
    except Exception as err:
        logger.finish("FAILED", f"{type(err).__name__}: {err}")
        raise
    value = trial_value(metrics, objective)
    logger.log_metrics({"tune/value": value})
    logger.finish("FINISHED")
    if not math.isfinite(value):
        raise optuna.TrialPruned(f"{objective} is {value}")
    return value


def trial_value(metrics: dict[str, float], objective: str) -> float:
    if objective == "loss":
        return float(metrics["train/final_loss"])
    scores = [v for k, v in metrics.items() if ZERO_SHOT.match(k)]
    if not scores:
        raise ValueError("the cell logged no 0-shot score (eval.shots must include 0): use --objective loss")
    return sum(scores) / len(scores)


def tuned_path(grid: Grid) -> Path:
    return grid.path.with_name(f"{grid.path.stem}.tuned.yaml")


def write_tuned_grid(grid: Grid, per: str, best: dict[str, dict], out: Path | None = None, note: str = "") -> Path:
    """The grid again, every cell pinned to its group's best values: `exclude` each tuned value, `include` it back
    cell by cell with `train.lr` (and `train.warmup_ratio`) set. Cells of untuned values stay as they were."""
    raw = yaml.safe_load(grid.path.read_text())
    tuned = {**raw, "name": f"{grid.name}-tuned",
             "description": (raw.get("description") or grid.name) + " (learning rate tuned per "
                            f"{per}: ablate tune)"}
    if per == "none":
        excludes, includes = [], []
        if "all" in best:
            tuned["base"] = _with_train(raw.get("base") or {}, best["all"])
    else:
        excludes = [{per: label} for label in best]
        includes = []
        for cell in grid.cells:
            label = str(cell.axes[per])
            if label in best:
                includes.append({**cell.axes, **{f"train.{k}": _round(v) for k, v in best[label].items()}})
    if excludes:
        tuned["exclude"] = list(raw.get("exclude") or []) + excludes
        tuned["include"] = [i for i in (raw.get("include") or []) if str(i.get(per)) not in best] + includes
    path = out or tuned_path(grid)
    header = (f"# Written by `ablate tune {grid.path.name} --per {per}` on "
              f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} from {grid.path.name}.\n"
              f"# Best values per {per}: {', '.join(f'{k}: {_fmt(v)}' for k, v in best.items()) or 'none'}.\n"
              f"# {note}\n")
    path.write_text(header + yaml.safe_dump(tuned, sort_keys=False, width=120))
    return path


def _with_train(base: dict, values: dict) -> dict:
    base = dict(base)
    base["train"] = {**(base.get("train") or {}), **{k: _round(v) for k, v in values.items()}}
    return base


def _round(value: float) -> float:
    return float(f"{value:.3g}")


def _fmt(params: dict) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in params.items())
