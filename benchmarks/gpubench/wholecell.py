"""A whole cell as `ablate run` trains it, in fresh processes (one per rank): its config, the worker that runs
one rank (`benchmarks/gpu.py --cell-worker SPEC.json`), the launcher and the figures read from what rank 0 logged.
Used by the parts `cell` and `dp`."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from .common import synthetic_batches

SCRIPT = Path(__file__).resolve().parents[1] / "gpu.py"
WORKER_FLAG = "--cell-worker"   # argv of the process that runs one rank of a whole cell (`cell_worker`)
SMALL_WORLD = {"n_train": 600, "n_test": 8, "n_demo": 8, "n_text_docs": 64, "n_interleaved_docs": 16}


def speed_switches() -> tuple[str, ...]:
    """The speed path's `train:` switches this version of ablate has (`ablate.train.speed.SWITCHES`), or ()."""
    from ablate.config.schema import TrainConfig

    try:
        from ablate.train.speed import SWITCHES
    except ImportError:
        return ()
    return tuple(name for name in SWITCHES if name in TrainConfig.model_fields)


def whole_cell_config(specs: dict, shape: dict, steps: int, batch: int, speed: bool, compile_: bool = True,
                      train_extra: dict | None = None) -> dict:
    """A cell over the embedded world (a small one) with the benchmark's backbones; `speed` False turns every
    switch of the speed path off, True leaves them `auto` (on with CUDA, off on the CPU); `train_extra`: more
    `train` settings (`parallel`, `lr_multipliers`)."""
    train = {"steps": steps, "batch_size": batch, "lr": 1e-4, "warmup_ratio": 0.0, "precision": "bf16",
             "checkpoint_every": 10**9, **(train_extra or {})}
    if not speed:
        train |= {name: False for name in speed_switches()}
    elif not compile_ and "compile" in speed_switches():
        train["compile"] = False
    return {"encoder": {"name": specs["encoder"], "resolution": shape["resolution"]},
            "connector": {"name": "avg-pool", "tokens": shape["tokens"]}, "llm": {"name": specs["llm"]},
            "data": {"world": {**SMALL_WORLD, "image_size": shape["image_px"]},
                     "max_length": shape["tokens"] + shape["text"]},
            "train": train}


class CaptureLogger:
    """A run logger that keeps the metrics and parameters a cell logs (no store: mlflow is not needed)."""

    run_id = "benchmark"

    def __init__(self):
        self.metrics: dict[str, float] = {}
        self.params: dict = {}
        self.losses: list[float] = []

    def log_metrics(self, metrics: dict, step: int = 0) -> None:
        self.metrics.update(metrics)

    def log_params(self, params: dict) -> None:
        self.params.update(params)

    def log_step(self, step: int, **values: float) -> None:
        if "train/loss" in values:
            self.losses.append(float(values["train/loss"]))

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def synthetic_stage_batches(shape: dict):
    """A stand-in for `ablate.cell.stage_batches` where `datasets` is missing (the GPU image lacks it): the
    benchmark's synthetic batches over the world's caption images, this process's rows of each global batch,
    from the step the stage is at."""
    from dataclasses import replace

    def stage_batches(cfg, world, model, cache_dir=None, rows: slice | None = None, resume: dict | None = None):
        # `resume` (a checkpoint's data position) is never given: the benchmark's cells do not resume
        paths = [row["image"] for row in world.read("caption")]

        def batches_for(stage, done: int):
            stream = synthetic_batches(paths, cfg.connector.tokens, shape["text"], cfg.train.batch_size,
                                       shape["llm"]["vocab_size"], seed=stage.seed(cfg.train.seed))
            for i, batch in enumerate(stream):
                if i < done:
                    continue
                if rows is not None:
                    batch = replace(batch, input_ids=batch.input_ids[rows], attention_mask=batch.attention_mask[rows],
                                    labels=batch.labels[rows], images=batch.images[rows],
                                    n_images=batch.n_images[rows])
                yield batch

        return batches_for

    return stage_batches


def cell_worker(spec_path: str) -> int:
    """One rank of a whole cell (`--cell-worker SPEC.json`): as `ablate.runners.child.run_rank` does it, with the
    evaluation left out; rank 0 writes what the cell logged to the spec's `out` file."""
    from types import SimpleNamespace

    import ablate.cell
    from ablate.cell import SilentLogger, run_cell
    from ablate.config.grid import Cell
    from ablate.config.schema import CellConfig
    from ablate.evaluation import cells as evaluation
    from ablate.train import parallel
    from ablate.workspace import Workspace

    spec = json.loads(Path(spec_path).read_text())
    evaluation.evaluate_model = lambda *a, **k: SimpleNamespace(metrics={}, predictions=[], tags={})
    if spec["synthetic_data"]:
        ablate.cell.stage_batches = synthetic_stage_batches(spec["shape"])
    cell = Cell(CellConfig.model_validate(spec["config"]), {}, spec["cell_id"])
    workspace = Workspace.create(spec["home"])
    parallel.init_from_env()
    if parallel.rank() != 0:
        if parallel.receive() == "train":
            run_cell(cell, workspace, SilentLogger())
        parallel.leave()
        return 0
    logger = CaptureLogger()
    start = time.perf_counter()
    try:
        run_cell(cell, workspace, logger)
    finally:
        if parallel.active():
            parallel.announce("skip")
        parallel.leave()
    Path(spec["out"]).write_text(json.dumps({"wall_s": time.perf_counter() - start, "metrics": logger.metrics,
                                             "params": logger.params, "losses": logger.losses}, default=str))
    return 0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_whole_cell(root: Path, config: dict, name: str, processes: int, threads: int, timeout_s: float,
                   cpu: bool = False, synthetic: dict | None = None) -> dict:
    """A whole cell in `processes` fresh processes (ranks of one group when more than one); what rank 0 logged.
    `synthetic`: the shape whose synthetic batches replace the world's data pipeline (`synthetic_stage_batches`)."""
    folder = root / "cells" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"config": config, "cell_id": name, "home": str(root / "home"), "out": str(folder / "result.json"),
            "synthetic_data": synthetic is not None, "shape": synthetic}
    (folder / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if cpu or not torch.cuda.is_available():
        env |= {"OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}
    if processes > 1:
        env |= {"WORLD_SIZE": str(processes), "LOCAL_WORLD_SIZE": str(processes), "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(free_port())}
    procs = []
    for rank in range(processes):
        ranked = env | ({"RANK": str(rank), "LOCAL_RANK": str(rank)} if processes > 1 else {})
        log = open(folder / f"rank{rank}.log", "w")
        procs.append((subprocess.Popen([sys.executable, str(SCRIPT), WORKER_FLAG,
                                        str(folder / "spec.json")], env=ranked, stdout=log,
                                       stderr=subprocess.STDOUT), log))
    deadline = time.monotonic() + timeout_s
    codes = []
    for proc, log in procs:
        try:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for other, _ in procs:
                other.kill()
            codes.append(proc.wait())
        log.close()
    out = folder / "result.json"
    if any(codes) or not out.is_file():
        tail = (folder / "rank0.log").read_text()[-600:]
        raise RuntimeError(f"{name}: exit codes {codes}; rank 0's log ends: {tail}")
    return json.loads(out.read_text())


def cell_fields(result: dict, batch: int) -> dict:
    """A whole cell's figures from what it logged (`cost/...`): samples/s at the median step."""
    m = result["metrics"]
    step_s = m.get("cost/step_s_median") or float("nan")
    fields = {"wall_s": result["wall_s"], "train_s": m.get("time/train_s"), "step_ms": 1000 * step_s,
              "samples_s": batch / step_s, "samples_s_whole": m.get("cost/samples_per_s"),
              "peak_gib": m.get("cost/peak_memory_gib"), "processes": int(m.get("cost/processes", 1))}
    if fields["processes"] > 1:   # peak_gib: the largest process's; this: all processes' together
        fields["peak_gib_all"] = m.get("cost/peak_memory_gib_all_processes")
    if result["losses"]:
        fields |= {"loss_first": result["losses"][0], "loss_last": result["losses"][-1]}
    on = [k.split("/", 1)[1] for k, v in result["params"].items() if k.startswith("speed/") and v in (True, "True")]
    fields["switches_on"] = ",".join(on) or "-"
    return fields



def whole_cell(bench, name: str, speed: bool, processes: int = 1, train_extra: dict | None = None) -> dict:
    """The benchmark's cell on `processes` ranks, speed path on or off; its figures (`cell_fields`)."""
    batch = bench.shape["batch"] * processes
    config = whole_cell_config(bench.specs, bench.shape, bench.args.cell_steps, batch, speed, bench.compile,
                               train_extra)
    remaining = max(60.0, bench.args.limit_s + 120 - bench.elapsed())
    synthetic = bench.args.synthetic_data or importlib.util.find_spec("datasets") is None
    result = run_whole_cell(bench.root, config, name, processes, bench.args.threads, remaining,
                            cpu=bench.device.type == "cpu", synthetic=bench.shape if synthetic else None)
    return {**cell_fields(result, batch), "data": "synthetic" if synthetic else "world"}


def build_small_world(bench) -> None:
    """The whole cells' world, built once before they are timed (every cell reads it from the cache)."""
    from ablate.config.schema import WorldConfig
    from ablate.workspace import Workspace
    from ablate.world import build_world

    if not getattr(bench, "world_built", False):
        t = time.perf_counter()
        build_world(WorldConfig(**SMALL_WORLD, image_size=bench.shape["image_px"]),
                    Workspace.create(bench.root / "home").cache)
        bench.world_built = True
        bench.row("cell", "small world built (not timed in the cells)", seconds=time.perf_counter() - t)
