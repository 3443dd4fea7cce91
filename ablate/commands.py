"""What each CLI command does. The CLI parses; this module wires grid -> runner -> store -> report."""
from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from ablate.config import fusion
from ablate.config.grid import Grid, axis_short_name
from ablate.config.schema import CellConfig
from ablate.evaluation import keys
from ablate.evaluation.cells import (
    ENDED_IN_EVALUATION,
    LEGACY_TAG,
    evaluate_trained,
    final_checkpoint,
    reference_updates,
)
from ablate.models.families import spec_family
from ablate.resolve import MAX_CELLS, Resolver, load_grid
from ablate.runners import load_runner
from ablate.runners.claims import claim
from ablate.runners.config import setup_commands
from ablate.tracking.dashboard import VIEW_TAG, runs_url, write_view
from ablate.tracking.store import (
    CELL_TAG,
    REASON_TAG,
    RunLogger,
    Store,
    StoreError,
    check_server,
    served,
    sqlite_path,
)
from ablate.tracking.ui import serve
from ablate.tune import tune_grid
from ablate.workspace import Workspace, folder_problem


def needs_hub(grid: Grid) -> bool:
    """Whether any cell names a hub model or dataset (zoo backbones, local folders and files, timm `@random` and the
    world need none)."""
    for cell in grid.cells:
        cfg = cell.config
        for name in (*fusion.member_names(cfg.encoder.name), cfg.llm.name):
            spec, family = spec_family(name)
            if family.needs_hub(spec):
                return True
        if any(source.format == "hub" for source in cfg.data.sources):
            return True
    return False


def dispatch(args) -> int:
    """Run one command. A grid is read and validated before anything is created on disk (no `.ablate/` folder for
    a grid that is refused, nor for a dry run)."""
    check_command_line(args)

    def workspace() -> Workspace:
        return Workspace.create(args.home, args.tracking_uri, args.reports)

    if args.command == "run":
        grid = load_grid(args.grid, MAX_CELLS if args.max_cells is None else args.max_cells)
        return cmd_run(grid, workspace, args.runner, args.dry_run, not args.no_report)
    if args.command == "eval":
        grid = load_grid(args.grid, MAX_CELLS if args.max_cells is None else args.max_cells)
        return cmd_eval(grid, workspace, args.dry_run, not args.no_report)
    if args.command == "report":
        grid = load_grid(args.grid)
        paths = make_report(grid, existing_store(Workspace.create(args.home, args.tracking_uri, args.reports,
                                                                  make=False), "nothing to report"))
        print(f"report: {paths.pdf}")
        return 0
    if args.command == "ls":
        grid = load_grid(args.grid)
        found = Workspace.create(args.home, args.tracking_uri, args.reports, make=False)
        if store_missing(found):
            print_cells(grid)
            print(f"no runs yet: there is no store at {found.tracking_uri} (nothing has run with this home); "
                  f"`ablate run {grid.path}` runs the grid")
            return 0
        return cmd_ls(grid, found)
    if args.command == "show":
        grid = load_grid(args.grid)
        return cmd_show(grid, existing_store(Workspace.create(args.home, args.tracking_uri, args.reports, make=False),
                                             "nothing to show"), args.cell)
    if args.command == "ui":
        return cmd_ui(existing_store(Workspace.create(args.home, args.tracking_uri, args.reports, make=False),
                                     "nothing to show"), args.port)
    if args.command == "zoo":
        return cmd_zoo(args, workspace())
    if args.command == "tune":

        grid = load_grid(args.grid)
        return tune_grid(grid, workspace(), trials=args.trials, per=args.per,
                         objective=args.objective, steps=args.steps, warmup=args.warmup)
    raise SystemExit(f"unknown command {args.command}")


def check_command_line(args) -> None:
    """Options that cannot work, refused before anything is read, created or trained (a dry run included): one line
    naming the option (`GridError`, exit 2)."""
    from ablate.config.errors import GridError

    read_only = args.command in ("ls", "report", "ui", "show")
    home = args.home or os.environ.get("ABLATE_HOME") or ".ablate"
    folders = [("--home", home)] + ([("--reports", args.reports or "reports")]
                                    if args.command in ("run", "eval", "report", "tune") else [])
    for option, path in folders:
        problem = folder_problem(path, write=not (read_only and option == "--home"))
        if problem:
            raise GridError(option, f"{problem}: give a folder ablate can create and write in")
    if getattr(args, "max_cells", None) is not None and args.max_cells < 1:
        raise GridError("--max-cells", f"{args.max_cells} is not a number of cells: give a whole number >= 1 (the "
                                       f"default refuses grids of more than {MAX_CELLS} cells)")
    if args.command == "ui" and not 1 <= args.port <= 65535:
        raise GridError("--port", f"{args.port} is not a TCP port: give a number from 1 to 65535 (1024 and above "
                                  "without root; default 5000)")


def store_missing(workspace: Workspace) -> bool:
    """Whether the workspace's local store does not exist yet (nothing has run with this home)."""
    db = sqlite_path(workspace.tracking_uri)
    return db is not None and not db.exists()


def existing_store(workspace: Workspace, what: str) -> Workspace:
    """The workspace of a command that only reads the store; a `StoreError` (one line, exit 2) where there is no
    store yet, so that reading never creates one."""
    if store_missing(workspace):
        raise StoreError(workspace.tracking_uri, f"{what}: there is no store here yet (nothing has run with this "
                         "home; --home or ABLATE_HOME choose another): `ablate run GRID` first")
    return workspace


def print_cells(grid: Grid) -> None:
    from ablate.models import sizes  # lazy: the zoo's recipes

    print(f"grid {grid.name} ({grid.path}): {len(grid.cells)} cells over {', '.join(grid.axes) or 'no axes'}")
    memory, too_big, too_long = sizes.machine_memory_bytes(), [], []
    for i, cell in enumerate(grid.cells, 1):
        step, flops = sizes.step_activation_bytes(cell.config), sizes.training_flops(cell.config)
        estimates = ([f"~{_gib(step)} GiB a training step"] if step is not None else []) + \
            ([f"~{flops:.1e} training FLOPs: {_duration(flops / sizes.CPU_CORE_FLOPS)} on one CPU core"]
             if flops is not None else [])
        print(f"  {i:>3}. {cell.id}  {cell.label()}" + (f"  ({'; '.join(estimates)})" if estimates else ""))
        if step is not None and memory is not None and step > memory:
            too_big.append((i, cell, step))
        if flops is not None and flops / sizes.H100_FLOPS > sizes.UNMEANT_S:
            too_long.append((i, cell, flops))
    for warning in grid.warnings:
        print(f"warning: {warning}")
    for i, cell, flops in too_long:   # an estimate (ablate.models.sizes): a warning, not a refusal
        print(f"warning: cell {i} ({cell.id}): about {flops:.1e} training FLOPs (6 x the LLM's parameters x "
              f"{cell.config.train.steps} steps x {cell.config.train.batch_size} rows x {cell.config.data.max_length} "
              f"tokens), {_duration(flops / sizes.H100_FLOPS)} even on one H100: lower train.steps, "
              "train.batch_size or data.max_length")
    for i, cell, step in too_big:   # an estimate (ablate.models.sizes): a warning, not a refusal
        print(f"warning: cell {i} ({cell.id}): a training step keeps about {_gib(step)} GiB of activations "
              f"({cell.config.train.batch_size} rows / train.grad_accum {cell.config.train.grad_accum} of "
              f"{cell.config.data.max_length} tokens through {cell.config.llm.name}), more than this machine's "
              f"{_gib(memory)} GiB: lower train.batch_size or data.max_length, or raise train.grad_accum")
    from ablate.evaluation.budget import warnings as budget_warnings  # lazy: transformers (the LLM's tokenizer)

    for warning in budget_warnings(grid.cells):   # reference answers longer than eval.max_new_tokens
        print(f"warning: {warning}")


def _duration(seconds: float) -> str:
    """An estimate's duration in its largest sensible unit: `40 s`, `12 min`, `5.2 h`, `3.1e+04 days`."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            value = seconds / size
            return f"{value:.2g} {unit}" if value < 1e4 else f"{value:.1e} {unit}"
    return f"{seconds:.0f} s"


def _gib(size: int) -> str:
    from ablate.models.sizes import GIB  # lazy: as in print_cells

    return f"{size / GIB:.2g}" if size < 10 * GIB else f"{size / GIB:,.0f}"


def cmd_run(grid: Grid, workspace: Callable[[], Workspace], runner_file: str | None, dry_run: bool,
            report: bool) -> int:
    """`workspace` makes the workspace (creating `.ablate/`): called only once the grid and runner are valid and
    this is not a dry run."""

    if not needs_hub(grid):   # an embedded or local grid never waits on a network that may not be there
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    runner = load_runner(runner_file)
    print_cells(grid)
    if dry_run:
        for line in setup_commands(runner_file):   # a shared runner file runs these on the user's account
            print(f"runner setup, run before each job: {line}")
        print("dry run: nothing trained, nothing written to the store.")
        return 0
    workspace = workspace()
    if served(workspace.tracking_uri):   # a server that is down: one line at once, before any asset is made
        check_server(workspace.tracking_uri)
    started = time.monotonic()
    from ablate.cell import prepare_assets  # lazy: the training stack (torch) loads only once a grid really runs

    prepare_assets(grid.cells, workspace)
    evaluated = evaluate_pending(grid, workspace)   # trained cells first: new tasks / settings, no training
    # a trained cell whose evaluation failed again is reported, not handed to the runner to be trained again
    outcome = runner.run(replace(grid, cells=[c for c in grid.cells if c.id not in evaluated.failed]), workspace)
    print(f"{len(outcome.finished)} cells finished, {len(outcome.skipped)} already done, "
          f"{len(outcome.failed)} failed, {len(outcome.claimed_elsewhere)} held by another process"
          + (f", {len(outcome.submitted)} submitted" if outcome.submitted else "")
          + f" ({time.monotonic() - started:.0f} s).")
    for cell_id, reason in outcome.failed.items():
        print(f"  failed {cell_id}: {reason}")
    evaluated.say_failures()
    if report:
        paths = make_report(grid, workspace)
        print(f"report: {paths.pdf}")
    print(runs_hint(grid, workspace))
    if outcome.claimed_elsewhere:   # another `ablate run` of this grid, or of a grid that shares the cell, has it
        print(f"not done: {len(outcome.claimed_elsewhere)} cells were held by another process (another `ablate run` "
              "of this grid, or of another grid with the same cell) and are missing from this grid's runs and "
              f"report: {', '.join(outcome.claimed_elsewhere)}; run the same command again once it has finished",
              file=sys.stderr)
    return 1 if outcome.failed or evaluated.failed or outcome.claimed_elsewhere else 0


def cmd_eval(grid: Grid, workspace: Callable[[], Workspace], dry_run: bool, report: bool) -> int:
    """`ablate eval GRID`: evaluate the finished cells on what they have not been evaluated on with these settings
    (new tasks, shot counts, limits, prompts), from their final checkpoints; train nothing."""
    if not needs_hub(grid):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    print_cells(grid)
    if dry_run:
        print("dry run: nothing evaluated, nothing written to the store.")
        return 0
    workspace = workspace()
    if served(workspace.tracking_uri):   # a server that is down: one line at once, before any asset is made
        check_server(workspace.tracking_uri)
    outcome = evaluate_pending(grid, workspace)
    outcome.say_failures()
    if outcome.untrained:
        print(f"{len(outcome.untrained)} cells have not finished training: `ablate run {grid.path}` trains and "
              "evaluates them.")
    if report:
        paths = make_report(grid, workspace)
        print(f"report: {paths.pdf}")
    print(runs_hint(grid, workspace))
    return 1 if outcome.failed else 0


@dataclass
class EvalOutcome:
    evaluated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    untrained: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)

    def say_failures(self) -> None:
        for cell_id, reason in self.failed.items():
            print(f"  evaluation failed {cell_id}: {reason}")


def evaluate_pending(grid: Grid, workspace: Workspace, say=print) -> EvalOutcome:
    """Evaluate every finished cell of the grid on its pending evaluations (`ablate.evaluation.keys.pending`), from
    its final checkpoint, logging to its run; each under the cell's claim, so two processes never do one twice.
    A cell whose last run failed or was killed after its final checkpoint was written (in its evaluation) is
    evaluated the same way and its run closed FINISHED: it is not trained again. Runs made before cell ids left the
    eval block out are recognised first (`adopt_legacy_runs`)."""
    from ablate.record import evaluation_tags
    from ablate.runners.local import claims_dir, disk_fault, one_line, open_store, stopped  # lazy: loads torch
    from ablate.tracking.results import latest_per_cell  # lazy: pandas, only for commands that read results

    store, experiment = open_store(workspace, grid)
    adopted = adopt_legacy_runs(store, experiment, grid)
    if adopted:
        say(f"{adopted} runs made before evaluations were keyed apart from training recognised as their cells' "
            "(tagged ablate.legacy_cell_id)")
    records = latest_per_cell(store.runs(experiment))
    outcome = EvalOutcome()
    todo_cells = []
    for cell in grid.cells:
        record = records.get(cell.id)
        if record is not None and record.status == "FINISHED":
            if keys.pending(cell.config.eval, record.tags):
                todo_cells.append((cell, record))
            elif updates := reference_updates(cell, workspace, record):   # chance / baseline stated since
                RunLogger(store.client, record.run_id).log_metrics(updates)
        elif record is not None and record.status in (*ENDED_IN_EVALUATION, "RUNNING") and final_checkpoint(
                cell.id, record.tags, workspace.checkpoints):
            todo_cells.append((cell, record))   # trained to the end, its evaluation failed or was cut: no retraining
        else:
            outcome.untrained.append(cell.id)
    if todo_cells:
        say(f"{len(todo_cells)} trained cells have evaluations to do (new tasks, shot counts or settings, or an "
            "evaluation that did not finish): evaluating their final checkpoints, no training")
    for index, (cell, record) in enumerate(todo_cells, 1):
        with claim(claims_dir(workspace), cell.id) as mine:
            if not mine:
                outcome.held.append(cell.id)
                continue
            run = store.client.get_run(record.run_id)   # another process may have evaluated it meanwhile
            record = replace(record, tags=dict(run.data.tags), metrics=dict(run.data.metrics), status=run.info.status)
            if record.status == "RUNNING":   # we hold the claim: the process that ran it has died (close_stale)
                store.close_stale(experiment, cell.id)
                record = replace(record, status="KILLED", tags={**record.tags, REASON_TAG: "killed"})
            todo = keys.pending(cell.config.eval, record.tags)
            if not todo or record.status not in ("FINISHED", *ENDED_IN_EVALUATION):
                continue
            label = cell.label() or cell.id
            say(f"[{index}/{len(todo_cells)}] {label}: evaluating "
                f"{', '.join(sorted(n.removeprefix(keys.EVAL_TAG) for n in todo))}")
            try:
                result = evaluate_trained(cell, workspace, store, record, todo)
            except Exception as err:  # noqa: BLE001 - one cell's failure must not stop the others
                if disk_fault(err):
                    raise stopped(workspace, cell, err) from err
                outcome.failed[cell.id] = one_line(err) if type(err).__name__ != "NoCheckpoint" else str(err)
                say(f"    FAILED: {outcome.failed[cell.id]}")
                continue
            scores = "  ".join(f"{k.removeprefix('score/')} {v:.3f}" for k, v in result.metrics.items()
                               if k.startswith("score/") and k.count("/") == 2)
            say(f"    {scores or 'done'} ({result.seconds:.0f} s)")
            RunLogger(store.client, record.run_id).set_tags(evaluation_tags())   # beside the training's record
            outcome.evaluated.append(cell.id)
    return outcome


def adopt_legacy_runs(store, experiment: str, grid: Grid) -> int:
    """Recognise runs tagged with a cell's legacy id (`ablate.resolve.legacy_cell_id`: made before a cell's id left
    its eval block out) and tag them with the cell's id, keeping the old one as `ablate.legacy_cell_id`, and with
    the evaluations they did (`ablate.evaluation.keys.done_by_metrics`). A run whose eval block differs from the
    grid's now is recognised by its logged `cell_config.json`: its legacy id must match its tag (so its world
    and zoo recipes are today's), and its training identity a cell of the grid. Returns how many were re-tagged."""
    from ablate.tracking.results import read_json_artifact  # lazy: pandas, only for commands that read results

    current = {cell.id: cell for cell in grid.cells}
    candidates = [r for r in store.runs(experiment) if r.cell_id and r.cell_id not in current
                  and LEGACY_TAG not in r.tags and not any(t.startswith(keys.EVAL_TAG) for t in r.tags)]
    if not candidates:
        return 0
    resolver = Resolver()
    legacy = {resolver.legacy_cell_id(cell.config): cell for cell in grid.cells}
    adopted = 0
    for record in candidates:
        cell = legacy.get(record.cell_id)
        config = cell.config if cell is not None else None
        if cell is None:
            logged = read_json_artifact(store, record.run_id, "cell_config.json")
            try:
                config = CellConfig.model_validate(logged) if isinstance(logged, dict) else None
            except ValueError:
                config = None
            if config is None or resolver.legacy_cell_id(config) != record.cell_id:
                continue
            cell = current.get(resolver.cell_id(config))
            if cell is None:
                continue
        tags = {CELL_TAG: cell.id, LEGACY_TAG: record.cell_id, **keys.done_by_metrics(config.eval, record.metrics)}
        for key, value in tags.items():
            store.client.set_tag(record.run_id, key, value)
        adopted += 1
    return adopted


def runs_hint(grid: Grid, workspace: Workspace, port: int = 5000) -> str:
    """The address of the grid's runs table in the MLflow UI, opened on the grid's view (its axes and scores as
    columns: tracking/dashboard.py); the view is written here too when a store made before views lacks it."""

    store = Store(workspace.tracking_uri, workspace.artifacts)
    experiment = store.experiment_id(grid, create=False)
    if experiment is None:
        return f"runs: none yet (no MLflow experiment '{grid.name}' in {workspace.tracking_uri})"
    write_view(store.client, experiment, grid, store.client.get_experiment(experiment).tags)
    if workspace.tracking_uri.startswith(("http://", "https://")):   # a team's `mlflow server` serves its own UI
        return f"runs: {runs_url(workspace.tracking_uri, experiment)}"
    return f"runs: `ablate ui`, then {runs_url(f'http://127.0.0.1:{port}', experiment)}"


def cmd_ui(workspace: Workspace, port: int) -> int:
    """Serve the MLflow UI on the local store until Ctrl-C or SIGTERM, which stop the server and its workers;
    print each grid's runs table first."""

    uri = workspace.tracking_uri
    if uri.startswith(("http://", "https://")):
        print(f"the store is an MLflow server with its own UI: {uri}")
        return 0
    base = f"http://127.0.0.1:{port}"
    experiments = [e for e in Store(uri, workspace.artifacts).client.search_experiments()
                   if "ablate.grid_file" in e.tags]
    print(f"MLflow UI on {base} (store {uri}); Ctrl-C stops it. Each grid's runs, its axes and scores as columns:")
    for experiment in experiments:
        print(f"  {experiment.name}: {runs_url(base, experiment.experiment_id, view=VIEW_TAG in experiment.tags)}")
    if not experiments:
        print("  (no grid has run on this store yet)")
    return serve(uri, port)


def cmd_ls(grid: Grid, workspace: Workspace) -> int:
    from ablate.tracking.results import results_frame  # lazy: pandas, only for commands that read results

    store = Store(workspace.tracking_uri, workspace.artifacts)
    pending = _recognise(store, grid)
    frame, _ = results_frame(store, grid, with_curves=False)
    scores = [c for c in frame.columns if c.startswith("score/") and c.count("/") == 2]   # per type: the report
    shown = frame[["cell_id", *grid.axes, "status", *scores]].copy()
    for col in scores:
        shown[col] = shown[col].map(lambda v: "" if v != v else f"{100 * v:.1f}")
    names = {**{axis: axis_short_name(axis) for axis in grid.axes}, **{c: c.removeprefix("score/") for c in scores}}
    print(shown.rename(columns=names).to_string(index=False))
    if scores:
        print("scores in % (per question type and with their intervals: `ablate report`)")
    counts = frame["status"].value_counts().to_dict()
    print("  ".join(f"{k.lower()}: {v}" for k, v in sorted(counts.items())))
    if pending:
        todo = ", ".join(sorted(set().union(*pending.values())))
        print(f"{len(pending)} finished cells have evaluations to do ({todo}): `ablate eval {grid.path}` (or "
              "`ablate run`) evaluates them without training")
    return 0


def find_cell(grid: Grid, text: str):
    """The grid's cell whose id is `text` or starts with it; a `GridError` naming the candidates otherwise."""
    from ablate.config.errors import GridError

    matches = [cell for cell in grid.cells if cell.id.startswith(text.strip())] if text.strip() else []
    if len(matches) == 1:
        return matches[0]
    listed = "; ".join(f"{c.id} ({c.label() or 'no axes'})" for c in (matches or grid.cells)[:12])
    why = f"matches {len(matches)} cells" if matches else "is not the id (or the start of one) of any cell"
    raise GridError("CELL", f"{text!r} {why} of grid {grid.name} ({grid.path}): {listed}")


def cmd_show(grid: Grid, workspace: Workspace, text: str) -> int:
    """`ablate show GRID CELL`: the cell's run, its main scores and its run record (`ablate.record`)."""
    from ablate.record import RECORD_FILE, describe
    from ablate.tracking.results import latest_per_cell, read_json_artifact  # lazy: pandas

    cell = find_cell(grid, text)
    print(f"cell {cell.id} of grid {grid.name} ({grid.path}): {cell.label() or 'no swept axes'}")
    store = Store(workspace.tracking_uri, workspace.artifacts)
    experiment = store.experiment_id(grid, create=False)
    run = latest_per_cell(store.runs(experiment)).get(cell.id) if experiment else None
    if run is None:
        print(f"no run yet in {workspace.tracking_uri}: `ablate run {grid.path}` runs it")
        return 1
    wall = run.metrics.get("wall_s")
    print(f"run {run.run_id}: {run.status}" + (f", wall time {wall:.0f} s" if wall is not None else "")
          + (f" ({run.tags[REASON_TAG]})" if run.tags.get(REASON_TAG) else ""))
    scores = {k.removeprefix("score/"): v for k, v in sorted(run.metrics.items())
              if k.startswith("score/") and k.count("/") == 2}
    if scores:
        print("scores: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in scores.items()))
    rec = read_json_artifact(store, run.run_id, RECORD_FILE)
    if rec is None:
        print(f"no run record ({RECORD_FILE}) on this run; its config as logged (params):")
        for key, value in sorted(run.params.items()):
            print(f"  {key} = {value}")
        return 0
    print("\n".join(describe(rec)))
    return 0


def _recognise(store, grid: Grid) -> dict[str, set[str]]:
    """Recognise the grid's legacy runs (`adopt_legacy_runs`, a warning where the store is read-only) and say which
    finished cells have evaluations pending: cell id -> {"<task>/<k>shot", ...}."""

    from ablate.tracking.results import latest_per_cell  # lazy: pandas, only for commands that read results

    experiment = store.experiment_id(grid, create=False)
    if experiment is None:
        return {}
    try:
        adopt_legacy_runs(store, experiment, grid)
    except Exception as err:  # noqa: BLE001 - a read-only store still lists (its old runs as missing)
        logging.getLogger(__name__).warning("could not tag the grid's runs made before evaluations were keyed "
                                            "apart (%s): they show as missing", err)
    records = latest_per_cell(store.runs(experiment))
    out = {}
    for cell in grid.cells:
        record = records.get(cell.id)
        if record is not None and record.status == "FINISHED":
            todo = keys.pending(cell.config.eval, record.tags)
            if todo:
                out[cell.id] = {n.removeprefix(keys.EVAL_TAG) for n in todo}
    return out


def cmd_zoo(args, workspace: Workspace) -> int:
    from ablate.zoo import build_zoo, ship_zoo, zoo_status  # lazy: loads torch

    if args.zoo_command == "ship":
        try:
            shipped = ship_zoo(args.names, workspace.cache, Path(args.to) if args.to else None)
        except ValueError as err:   # not built here for its current recipe: one line, not a traceback
            raise SystemExit(f"error: {err}") from None
        for folder, manifest in shipped:
            sizes = ", ".join(f"{name} {entry['bytes'] / 1e6:.2f} MB" for name, entry in manifest["files"].items())
            total = sum(entry["bytes"] for entry in manifest["files"].values())
            print(f"shipped {manifest['spec']} -> {folder} ({total / 1e6:.2f} MB: {sizes})")
        return 0
    if args.zoo_command == "build":
        build_zoo(args.names or None, workspace.cache, force=args.force)
    print(f"{'model':<16} {'in cache':<10} {'shipped':<8} {'build s':>8} "
          f"{'retrieval (zero-shot / probe / chance)':>40}  {'held-out ppl':>12}  folder")
    for entry in zoo_status(workspace.cache):
        m = entry.metrics or {}
        retrieval = ""
        if "probe_i2t_top1" in m:
            zero = f"{100 * m['zero_shot_i2t_top1']:.1f}%" if "zero_shot_i2t_top1" in m else "-"
            retrieval = f"{zero} / {100 * m['probe_i2t_top1']:.1f}% / {100 * m['chance']:.1f}%"
        ppl = f"{m['heldout_ppl']:.2f}" if "heldout_ppl" in m else ""
        build_s = f"{m['build_s']:.0f}" if "build_s" in m else ""
        print(f"{entry.spec:<16} {entry.origin or 'no':<10} {entry.shipped:<8} {build_s:>8} {retrieval:>40}  "
              f"{ppl:>12}  {entry.folder}")
    return 0


def make_report(grid: Grid, workspace: Workspace):
    """Read the grid's runs back from the store and write reports/<grid>/ (never from runner memory)."""
    from ablate.report import ReportMeta, build_report  # lazy: pandas and matplotlib, only to write a report
    from ablate.tracking.results import read_predictions, results_frame, score_curves  # lazy

    store = Store(workspace.tracking_uri, workspace.artifacts)
    pending = _recognise(store, grid)
    if pending:
        print(f"note: {len(pending)} finished cells have evaluations to do: `ablate eval {grid.path}` evaluates them "
              "(the report shows what is in the store)")
    frame, curves = results_frame(store, grid)
    meta = ReportMeta(
        grid_name=grid.name, grid_file=str(grid.path), date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        git_commit=_git_commit(), device=_machine(), swept_axes=list(grid.axes), fixed=grid.fixed,
        total_wall_s=float(frame["wall_s"].sum()) if "wall_s" in frame else None, elapsed_s=_elapsed(frame))
    out = workspace.reports / _safe(grid.name)
    run_ids = dict(zip(frame["cell_id"], frame["run_id"])) if "run_id" in frame else {}
    paths = build_report(frame, curves, meta, out, predictions=lambda cell_id: (
        read_predictions(store, run_ids[cell_id]) if isinstance(run_ids.get(cell_id), str) else None),
        score_curves=score_curves(store, frame),
        questions=lambda cell_id: (read_predictions(store, run_ids[cell_id], "questions.json")
                                   if isinstance(run_ids.get(cell_id), str) else None))
    experiment = store.experiment_id(grid, create=False)
    if experiment is not None:
        _log_report(store, experiment, grid, paths)
    return paths


def _log_report(store, experiment: str, grid: Grid, paths) -> None:
    """The HTML report goes to MLflow too, on a run of its own, so the UI shows it next to the cells' runs."""
    note = (f"The report of grid '{grid.name}', rebuilt from the store by `ablate report`: open "
            f"{paths.html.name} (or {paths.pdf.name}) under Artifacts. This run has no metrics of its own.")
    store.log_report(experiment, grid.name, [paths.html, paths.pdf], note)


def _elapsed(frame) -> float | None:
    """Seconds from the first run's start to the last run's end (None before any run ended)."""
    if "start_ms" not in frame or "end_ms" not in frame or not frame["end_ms"].notna().any():
        return None
    return float(frame["end_ms"].max() - frame["start_ms"].min()) / 1000


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "grid"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], check=False,
                               capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5).stdout.strip()
        return (out.stdout.strip() or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _machine() -> str:
    """The machine building the report, named as run records name theirs (`ablate.record.machine_label`)."""
    import torch  # lazy: torch only to name the device in a report

    from ablate.record import device, machine_label

    return f"{platform.node()}: {machine_label(device())}, torch {torch.__version__}"
