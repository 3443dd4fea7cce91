"""What each CLI command does. The CLI parses; this module wires grid -> runner -> store -> report."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from ablate.config.grid import Grid
from ablate.config.spec import Spec
from ablate.resolve import MAX_CELLS, load_grid
from ablate.workspace import Workspace


def needs_hub(grid: Grid) -> bool:
    """Whether any cell names a hub model or dataset (zoo backbones, local folders and files, timm `@random` and the
    world need none)."""
    for cell in grid.cells:
        cfg = cell.config
        for spec in (Spec.parse(cfg.encoder.name), Spec.parse(cfg.llm.name)):
            if (spec.family == "hf" and spec.path is None) or (spec.family == "timm" and not spec.weights):
                return True
        if any(source.format == "hub" for source in cfg.data.sources):
            return True
    return False


def dispatch(args) -> int:
    """Run one command. A grid is read and validated before anything is created on disk (no `.ablate/` folder for
    a grid that is refused, nor for a dry run)."""
    def workspace() -> Workspace:
        return Workspace.create(args.home, args.tracking_uri, args.reports)

    if args.command == "run":
        grid = load_grid(args.grid, MAX_CELLS if args.max_cells is None else args.max_cells)
        return cmd_run(grid, workspace, args.runner, args.dry_run, not args.no_report)
    if args.command == "report":
        grid = load_grid(args.grid)
        paths = make_report(grid, workspace())
        print(f"report: {paths.pdf}")
        return 0
    if args.command == "ls":
        grid = load_grid(args.grid)
        return cmd_ls(grid, workspace())
    if args.command == "ui":
        uri = workspace().tracking_uri
        print(f"MLflow UI on http://127.0.0.1:{args.port} (store {uri}); a grid's runs are under Experiments -> "
              "<grid name> -> 'Model training' (…/#/experiments/<id>/runs?workflowType=machine_learning)")
        return subprocess.call([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                                "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"])
    if args.command == "zoo":
        return cmd_zoo(args, workspace())
    if args.command == "tune":
        from ablate.tune import tune_grid

        grid = load_grid(args.grid)
        return tune_grid(grid, workspace(), trials=args.trials, per=args.per,
                         objective=args.objective, steps=args.steps, warmup=args.warmup)
    raise SystemExit(f"unknown command {args.command}")


def print_cells(grid: Grid) -> None:
    print(f"grid {grid.name} ({grid.path}): {len(grid.cells)} cells over {', '.join(grid.axes) or 'no axes'}")
    for i, cell in enumerate(grid.cells, 1):
        print(f"  {i:>3}. {cell.id}  {cell.label()}")
    for warning in grid.warnings:
        print(f"warning: {warning}")


def cmd_run(grid: Grid, workspace: Callable[[], Workspace], runner_file: str | None, dry_run: bool,
            report: bool) -> int:
    """`workspace` makes the workspace (creating `.ablate/`): called only once the grid and runner are valid and
    this is not a dry run."""
    from ablate.runners import load_runner

    if not needs_hub(grid):   # an embedded or local grid never waits on a network that may not be there
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    runner = load_runner(runner_file)
    print_cells(grid)
    if dry_run:
        print("dry run: nothing trained, nothing written to the store.")
        return 0
    workspace = workspace()
    started = time.monotonic()
    from ablate.cell import prepare_assets

    prepare_assets(grid.cells, workspace)
    outcome = runner.run(grid, workspace)
    print(f"{len(outcome.finished)} cells finished, {len(outcome.skipped)} already done, "
          f"{len(outcome.failed)} failed, {len(outcome.claimed_elsewhere)} held by another worker "
          f"({time.monotonic() - started:.0f} s).")
    for cell_id, reason in outcome.failed.items():
        print(f"  failed {cell_id}: {reason}")
    if report:
        paths = make_report(grid, workspace)
        print(f"report: {paths.pdf}")
    print(runs_hint(grid, workspace))
    return 1 if outcome.failed else 0


def runs_hint(grid: Grid, workspace: Workspace) -> str:
    """Where the grid's runs are in the MLflow UI (MLflow 3 opens experiments on its GenAI page otherwise)."""
    from ablate.tracking.store import Store

    experiment = Store(workspace.tracking_uri, workspace.artifacts).experiment_id(grid, create=False)
    if experiment is None:
        return f"runs: none yet (no MLflow experiment '{grid.name}' in {workspace.tracking_uri})"
    page = f"#/experiments/{experiment}/runs?workflowType=machine_learning"
    if workspace.tracking_uri.startswith(("http://", "https://")):   # a team's `mlflow server` serves its own UI
        return f"runs: {workspace.tracking_uri.rstrip('/')}/{page}"
    return f"runs: `ablate ui`, then http://127.0.0.1:5000/{page}"


def cmd_ls(grid: Grid, workspace: Workspace) -> int:
    from ablate.tracking.results import results_frame
    from ablate.tracking.store import Store

    frame, _ = results_frame(Store(workspace.tracking_uri, workspace.artifacts), grid, with_curves=False)
    scores = [c for c in frame.columns if c.startswith("score/")]
    shown = frame[["cell_id", *grid.axes, "status", *scores]].copy()
    for col in scores:
        shown[col] = shown[col].map(lambda v: "" if v != v else f"{100 * v:.1f}")
    print(shown.rename(columns=lambda c: c.removeprefix("score/")).to_string(index=False))
    counts = frame["status"].value_counts().to_dict()
    print("  ".join(f"{k.lower()}: {v}" for k, v in sorted(counts.items())))
    return 0


def cmd_zoo(args, workspace: Workspace) -> int:
    from ablate.zoo import build_zoo, zoo_status

    if args.zoo_command == "build":
        build_zoo(args.names or None, workspace.cache)
    print(f"{'model':<14} {'built':<6} {'build s':>8} {'retrieval (zero-shot / probe / chance)':>40}  "
          f"{'held-out ppl':>12}  folder")
    for spec, built, folder, metrics in zoo_status(workspace.cache):
        m = metrics or {}
        retrieval = ""
        if "probe_i2t_top1" in m:
            zero = f"{100 * m['zero_shot_i2t_top1']:.1f}%" if "zero_shot_i2t_top1" in m else "-"
            retrieval = f"{zero} / {100 * m['probe_i2t_top1']:.1f}% / {100 * m['chance']:.1f}%"
        ppl = f"{m['heldout_ppl']:.2f}" if "heldout_ppl" in m else ""
        build_s = f"{m['build_s']:.0f}" if "build_s" in m else ""
        print(f"{spec:<14} {'yes' if built else 'no':<6} {build_s:>8} {retrieval:>40}  {ppl:>12}  {folder}")
    return 0


def make_report(grid: Grid, workspace: Workspace):
    """Read the grid's runs back from the store and write reports/<grid>/ (never from runner memory)."""
    from ablate.report import ReportMeta, build_report
    from ablate.tracking.results import read_predictions, results_frame
    from ablate.tracking.store import Store

    store = Store(workspace.tracking_uri, workspace.artifacts)
    frame, curves = results_frame(store, grid)
    meta = ReportMeta(
        grid_name=grid.name, grid_file=str(grid.path), date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        git_commit=_git_commit(), device=_machine(), swept_axes=list(grid.axes), fixed=grid.fixed,
        total_wall_s=float(frame["wall_s"].sum()) if "wall_s" in frame else None, elapsed_s=_elapsed(frame))
    out = workspace.reports / _safe(grid.name)
    run_ids = dict(zip(frame["cell_id"], frame["run_id"])) if "run_id" in frame else {}
    paths = build_report(frame, curves, meta, out, predictions=lambda cell_id: (
        read_predictions(store, run_ids[cell_id]) if isinstance(run_ids.get(cell_id), str) else None))
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
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__})"
