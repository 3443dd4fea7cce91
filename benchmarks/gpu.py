#!/usr/bin/env python
"""GPU speed of ablate's training step, grid and evaluation, eager baseline and optimised path in one run.

    python benchmarks/gpu.py                   # reference shapes, needs a CUDA GPU, about 8-10 minutes
    python benchmarks/gpu.py --tiny            # tiny shapes, runs on a CPU in about a minute (tests the script)
    python benchmarks/gpu.py --out DIR         # also write DIR/gpu_results.json and DIR/gpu_results.md

Reference configuration (issue "GPU speed"): a SigLIP-B/16-shaped encoder at 384 px (frozen), an average-pool/MLP
connector with 144 visual tokens, a Qwen2-0.5B-shaped LM (vocabulary 151,936), 128 text tokens, batch 32, bf16
autocast. Random weights, built from configs, saved with save_pretrained and loaded through the project's own
`hf:<folder>` specs (`build_mllm`), so nothing is downloaded.

Parts, in the order they run (each prints its rows as it finishes; results are written after every row):
1. grid: a 6-cell connector grid (avg-pool / attn-pool / c-abstractor x 64 / 144 tokens) of `--grid-steps` (150)
   steps per cell through the project's training loop, eager baseline against optimised; model building,
   feature-cache filling and a cold compilation included (this part runs first, so nothing is compiled before it).
2. step: the eager baseline (full-vocabulary logits, Hugging Face loss, float32 frozen encoder under autocast)
   against the optimised step (fused linear + cross-entropy from `ablate.models.loss`, frozen encoder in bf16,
   decoder blocks under `torch.compile`), on the same card; samples/s, MFU of the measured bf16 matmul peak,
   peak memory, first/last loss.
3. loader: the optimised step with data already on the GPU against real loading (images decoded from disk on a
   prefetch thread, with and without the feature cache), and the plain synchronous path.
4. eval: batched generation (`MLLM.generate`), questions per second, float32 against bf16 autocast.
5. nocache: the optimised grid without the frozen-encoder feature cache at `--nocache-steps` steps per cell,
   against the cached grid's wall time up to that step of every cell.
6. cell: one whole cell as `ablate run` trains it (`ablate.cell.run_cell`: the embedded world, the model built,
   `--cell-steps` steps, the cost metrics, the final checkpoint), with the speed path off (every `train:` switch
   false) and on (`auto`: on with CUDA), each in a fresh process (cold compilation included); evaluation is left
   out (lmms-eval is not needed here). Without `datasets` (the GPU image) or with `--synthetic-data`, the world's
   data pipeline is replaced by synthetic batches over the world's images (column `data`). Figures: whole-cell
   wall time, training samples/s at the median step, peak memory, the effective switches, on / off.
7. dp: data-parallel weak scaling, when more than one GPU is visible (or `--dp-procs N`): the same cell with the
   speed path on, on 1 process and on N (one per GPU, `train.batch_size` N times the per-process batch), each rank
   joining the group as under runners/multigpu.yaml (`parallel.init_from_env`). Figures: samples/s, samples/s per
   GPU, weak-scaling efficiency (per-GPU samples/s on N over that on 1).
Parts 3-7 are skipped when their estimated end is past `--limit-s`, so that one run fits a 10-minute command;
they run in the order grid, step, cell, dp, loader, eval, nocache.

Needs torch, transformers, accelerate, pydantic, Pillow (and liger-kernel for its fused loss; without it the
chunked PyTorch loss is used). Not datasets, mlflow, optuna or lmms-eval.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

SHAPES = {
    "reference": {
        "encoder": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                        patch_size=16, image_size=384),
        "llm": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                    num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6,
                    max_position_embeddings=32768),
        "resolution": 384, "image_px": 192, "tokens": 144, "grid_tokens": (64, 144), "text": 128, "batch": 32,
        "n_images": 3000, "questions": 128, "peak_n": 8192,
    },
    "tiny": {
        "encoder": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                        patch_size=8, image_size=64),
        "llm": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                    num_key_value_heads=1, vocab_size=4096, tie_word_embeddings=True, max_position_embeddings=512),
        "resolution": 64, "image_px": 64, "tokens": 16, "grid_tokens": (4, 16), "text": 16, "batch": 4,
        "n_images": 48, "questions": 8, "peak_n": 512,
    },
}
CONNECTORS = ("avg-pool", "attn-pool", "c-abstractor")
# The order they run in. The grid goes first so that its optimised cells pay a cold compilation (the step part
# then reuses the compiled blocks); the later, cheaper parts run only if their estimated time fits --limit-s.
PARTS = ("grid", "step", "cell", "dp", "loader", "eval", "nocache")
LATE = {"cell", "dp", "loader", "eval", "nocache"}
WORKER_FLAG = "--cell-worker"   # argv of the process that runs one rank of a whole cell (`cell_worker`)
SMALL_WORLD = {"n_train": 600, "n_test": 8, "n_demo": 8, "n_text_docs": 64, "n_interleaved_docs": 16}


# ---------------------------------------------------------------------------------------------------------------
# setup: backbones and images on disk, batches
# ---------------------------------------------------------------------------------------------------------------
def write_backbones(root: Path, shape: dict, device: torch.device) -> dict[str, str]:
    """A random SigLIP vision tower and a random Qwen2 LM (+ a word-level tokenizer), saved with save_pretrained."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    torch.manual_seed(0)
    init = torch.device("cuda") if device.type == "cuda" else contextlib.nullcontext()
    with init:
        SiglipVisionModel(SiglipVisionConfig(**shape["encoder"])).save_pretrained(root / "encoder")
    vocab = {t: i for i, t in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", "<image>"])}
    vocab.update({f"w{i}": len(vocab) + i for i in range(1000)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                        eos_token="<eos>", unk_token="<unk>",
                                        extra_special_tokens={"image_token": "<image>"})
    with init:
        llm = Qwen2ForCausalLM(Qwen2Config(**shape["llm"], bos_token_id=1, eos_token_id=2, pad_token_id=0))
    llm.save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")
    del llm
    return {"encoder": f"hf:{root / 'encoder'}", "llm": f"hf:{root / 'llm'}"}


def write_images(folder: Path, n: int, px: int) -> list[str]:
    """`n` PNG images of coloured rectangles (the world's images are of this kind), written by a thread pool."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> str:
        rng = random.Random(i)
        img = Image.new("RGB", (px, px), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(img)
        for _ in range(4):
            x, y = rng.randrange(px - 8), rng.randrange(px - 8)
            draw.rectangle([x, y, x + rng.randrange(4, px // 2), y + rng.randrange(4, px // 2)],
                           fill=tuple(rng.randrange(256) for _ in range(3)))
        path = folder / f"{i:05d}.png"
        img.save(path)
        return str(path)

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(n)))


@dataclass
class SyntheticBatch:
    """What the training loop reads from a batch (`ablate.data.Batch`'s fields), made without `datasets`."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    images: list[str]
    n_images: torch.Tensor
    padding_fraction: float = 0.0


def synthetic_batches(paths: list[str], visual_tokens: int, text: int, batch: int, vocab: int, seed: int,
                      image_id: int = 4, bos_id: int = 1):
    """Endless batches of `<bos> <image>*visual_tokens text*(text-1)`, one image per row, labels on the text."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    order: list[str] = []
    while True:
        if len(order) < batch:
            extra = list(paths)
            rng.shuffle(extra)
            order += extra
        images, order = order[:batch], order[batch:]
        text_ids = torch.randint(5, vocab, (batch, text - 1), generator=gen)
        head = torch.tensor([bos_id] + [image_id] * visual_tokens).expand(batch, -1)
        ids = torch.cat([head, text_ids], dim=1)
        labels = ids.clone()
        labels[:, : 1 + visual_tokens] = -100
        yield SyntheticBatch(ids, torch.ones_like(ids), labels, images, torch.ones(batch, dtype=torch.long))


def cell_config(specs: dict, shape: dict, connector: str, tokens: int, steps: int, feature_cache: bool = True):
    from ablate.config.schema import CellConfig

    return CellConfig.model_validate({
        "encoder": {"name": specs["encoder"], "resolution": shape["resolution"]},
        "connector": {"name": connector, "tokens": tokens},
        "llm": {"name": specs["llm"]},
        "train": {"steps": steps, "batch_size": shape["batch"], "lr": 1e-4, "warmup_ratio": 0.0,
                  "precision": "bf16", "checkpoint_every": 10**9, "feature_cache": feature_cache},
    })


def speed_switches() -> tuple[str, ...]:
    """The speed path's `train:` switches this version of ablate has (`ablate.train.speed.SWITCHES`), or ()."""
    from ablate.config.schema import TrainConfig

    try:
        from ablate.train.speed import SWITCHES
    except ImportError:
        return ()
    return tuple(name for name in SWITCHES if name in TrainConfig.model_fields)


def whole_cell_config(specs: dict, shape: dict, steps: int, batch: int, speed: bool, compile_: bool = True) -> dict:
    """A cell over the embedded world (a small one) with the benchmark's backbones; `speed` False turns every
    switch of the speed path off, True leaves them `auto` (on with CUDA, off on the CPU)."""
    train = {"steps": steps, "batch_size": batch, "lr": 1e-4, "warmup_ratio": 0.0, "precision": "bf16",
             "checkpoint_every": 10**9}
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

    def stage_batches(cfg, world, model, cache_dir=None, rows: slice | None = None):
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
        procs.append((subprocess.Popen([sys.executable, str(Path(__file__).resolve()), WORKER_FLAG,
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
    if result["losses"]:
        fields |= {"loss_first": result["losses"][0], "loss_last": result["losses"][-1]}
    on = [k.split("/", 1)[1] for k, v in result["params"].items() if k.startswith("speed/") and v in (True, "True")]
    fields["switches_on"] = ",".join(on) or "-"
    return fields


# ---------------------------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def matmul_peak_tflops(device: torch.device, n: int) -> float:
    """Measured dense matmul throughput: bf16 on a GPU, float32 on a CPU (the MFU denominator)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps = 10 if device.type == "cuda" else 3
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


class Clock:
    """Hooks for `ablate.train.loop.train`: the wall time and loss of every step."""

    def __init__(self, device: torch.device):
        self.device, self.times, self.losses = device, [], []

    def on_step(self, step: int, loss: float, lr: float) -> None:   # the loop has synced (float(loss))
        self.times.append(time.perf_counter())
        self.losses.append(loss)

    def on_checkpoint(self, step: int, state: dict) -> None:
        pass


def train_step(model, batch, optimizer, scheduler, clip: float, device: torch.device, pixel_values=None,
               features=None) -> float:
    """One step exactly as `ablate.train.loop.train` does it, with the images given as pixels or features."""
    with torch.autocast(device.type, dtype=torch.bfloat16):
        loss = model(batch.input_ids.to(device), batch.attention_mask.to(device), batch.labels.to(device),
                     batch.images, pixel_values=pixel_values,
                     features=features if features is not None else getattr(batch, "features", None)).loss
    value = float(loss.detach())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip)
    optimizer.step()
    scheduler.step()
    return value


def timed(device: torch.device, run_step, warm: int, steps: int) -> dict:
    """Run `warm` + `steps` steps; the median step time after the warm-up, and the warm-up's wall time."""
    reset_peak(device)
    start = time.perf_counter()
    losses = [run_step() for _ in range(warm)]
    sync(device)
    first = time.perf_counter() - start
    marks = [time.perf_counter()]
    for _ in range(steps):
        losses.append(run_step())
        marks.append(time.perf_counter())
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    return {"step_ms": 1000 * statistics.median(gaps), "mean_ms": 1000 * statistics.fmean(gaps),
            "first_steps_s": first, "peak_gib": peak_gib(device), "losses": losses}


@contextlib.contextmanager
def chunked_loss():
    """Inside: the fused loss uses the plain PyTorch chunked backend even where Liger-Kernel is available."""
    from ablate.models import loss as loss_module

    original = loss_module.linear_cross_entropy

    def chunked(*args, **kwargs):
        return original(*args, **{**kwargs, "backend": "chunked"})

    loss_module.linear_cross_entropy = chunked
    try:
        yield
    finally:
        loss_module.linear_cross_entropy = original


def liger_check(device: torch.device) -> str:
    """'ok' when Liger's fused loss runs here and agrees with the chunked loss (value and gradients), else why not."""
    from ablate.models.loss import liger_available, linear_cross_entropy

    if device.type != "cuda" or not liger_available():
        return "not used (no CUDA or not importable)"
    try:
        g = torch.Generator(device=device).manual_seed(0)
        h = torch.randn(300, 256, device=device, generator=g)
        w = torch.randn(5000, 256, device=device, generator=g) * 0.05
        y = torch.randint(0, 5000, (300,), device=device, generator=g)
        out = {}
        for backend in ("liger", "chunked"):
            hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = linear_cross_entropy(hh, ww, y, chunk_rows=128, backend=backend)
            loss.backward()
            out[backend] = (loss.float(), hh.grad.float(), ww.grad.float())
        for a, b in zip(out["liger"], out["chunked"]):
            torch.testing.assert_close(a, b, rtol=3e-2, atol=3e-3)
    except Exception as err:
        return f"disabled: {type(err).__name__}: {err}"[:200]
    return "ok"


def count_flops(model, batch, pixel_values, device: torch.device) -> float:
    """FLOPs of one training step's forward + backward (frozen encoder forward only), by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with chunked_loss(), counter, torch.autocast(device.type, dtype=torch.bfloat16):
        loss = model(batch.input_ids.to(device), batch.attention_mask.to(device), batch.labels.to(device),
                     batch.images, pixel_values=pixel_values).loss
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


# ---------------------------------------------------------------------------------------------------------------
# parts
# ---------------------------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args):
        self.args = args
        self.shape = SHAPES["tiny" if args.tiny else "reference"]
        self.device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
        if self.device.type == "cpu":
            torch.set_num_threads(args.threads)
        self.started = time.perf_counter()
        self.root = Path(tempfile.mkdtemp(prefix="ablate-gpu-bench-"))
        self.results: dict = {"meta": self.meta(), "rows": []}
        self.compile = not args.no_compile
        self.stack = contextlib.ExitStack()

    # -- bookkeeping --
    def meta(self) -> dict:
        import transformers

        from ablate.models.loss import liger_available

        return {"date": time.strftime("%Y-%m-%d %H:%M"), "device": (torch.cuda.get_device_name()
                if torch.cuda.is_available() and not self.args.cpu else platform.processor() or "cpu"),
                "torch": torch.__version__, "transformers": transformers.__version__,
                "liger": liger_available(), "shapes": "tiny" if self.args.tiny else "reference",
                "cpus": os.cpu_count()}

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def row(self, part: str, name: str, **values) -> None:
        values = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in values.items()}
        self.results["rows"].append({"part": part, "name": name, **values})
        shown = "  ".join(f"{k}={v}" for k, v in values.items() if k != "losses")
        print(f"[{self.elapsed():6.0f}s] {part:6s} {name:42s} {shown}", flush=True)
        self.save()

    def save(self) -> None:
        if self.args.out:
            out = Path(self.args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "gpu_results.json").write_text(json.dumps(self.results, indent=1, default=str))
            (out / "gpu_results.md").write_text(markdown(self.results))

    # -- setup --
    def setup(self) -> None:
        t = time.perf_counter()
        self.specs = write_backbones(self.root, self.shape, self.device)
        self.paths = write_images(self.root / "images", self.shape["n_images"], self.shape["image_px"])
        self.peak = matmul_peak_tflops(self.device, self.shape["peak_n"])
        self.results["meta"]["liger_check"] = check = liger_check(self.device)
        if check.startswith("disabled"):     # the whole run falls back to the chunked PyTorch loss
            self.stack.enter_context(chunked_loss())
        self.results["meta"]["matmul_peak_tflops"] = round(self.peak, 1)
        self.row("setup", "backbones + images written", seconds=time.perf_counter() - t,
                 matmul_peak_tflops=self.peak)

    def build(self, connector: str = "avg-pool", tokens: int | None = None, steps: int = 100, cache=None,
              feature_cache: bool = True):
        from ablate.models.build import build_mllm
        from ablate.train.optim import build_optimizer

        cfg = cell_config(self.specs, self.shape, connector, tokens or self.shape["tokens"], steps, feature_cache)
        model = build_mllm(cfg, self.root / "cache", cache, device=self.device)
        optimizer, scheduler = build_optimizer(model, cfg.train)
        return cfg, model, optimizer, scheduler

    def batches(self, tokens: int | None = None, seed: int = 0):
        return synthetic_batches(self.paths, tokens or self.shape["tokens"], self.shape["text"],
                                 self.shape["batch"], self.shape["llm"]["vocab_size"], seed)

    def optimise(self, model) -> dict:
        from ablate.train.speed import cast_frozen, compile_blocks

        cast = cast_frozen(model, vars(model.parts())) if self.device.type == "cuda" else []
        compiled = compile_blocks(model.llm) if self.compile else 0
        return {"bf16_frozen": ",".join(cast) or "-", "compiled_blocks": compiled}

    def estimate(self, part: str) -> float:
        """Seconds a late part should take, from what was measured so far (generous when nothing was)."""
        step_s = self.optimised["step_ms"] / 1000 if hasattr(self, "optimised") else 0.15
        build_s = getattr(self, "build_s", 10.0)
        n = self.args.warm + self.args.steps
        if part == "loader":
            return 4 * n * step_s * 1.5 + 15
        if part == "eval":
            return 2 * build_s + 20
        if part == "nocache":
            few = min(self.args.nocache_steps, self.args.grid_steps)
            return 6 * (build_s + few * step_s * 1.3) + 10
        eager_s = self.baseline["step_ms"] / 1000 if hasattr(self, "baseline") else 2 * step_s
        start_s = build_s + 45          # a fresh process: imports, the world, the model, a cold compilation
        if part == "cell":
            return 2 * start_s + self.args.cell_steps * (step_s + eager_s) * 1.2
        if part == "dp":
            runs = 1 + (not hasattr(self, "cell_on"))
            return (runs + 1) * start_s + runs * self.args.cell_steps * step_s * 1.2 + \
                self.args.cell_steps * step_s * 1.5
        return 0.0

    # -- 1. the step --
    def part_step(self) -> None:
        from ablate.train.speed import reference_forward

        args, device = self.args, self.device
        cfg, model, optimizer, scheduler = self.build(steps=10**6)
        batch = next(self.batches())
        pixels = model.encoder.preprocess(load_images(batch.images)).to(device)
        on_gpu = SyntheticBatch(batch.input_ids.to(device), batch.attention_mask.to(device),
                                batch.labels.to(device), batch.images, batch.n_images)
        clip = cfg.train.grad_clip

        def step(px=None, feats=None):
            return lambda: train_step(model, on_gpu, optimizer, scheduler, clip, device, px, feats)

        self.flops = count_flops(model, on_gpu, pixels, device)           # the fused path: labelled rows only
        with reference_forward(model):
            eager_flops = count_flops(model, on_gpu, pixels, device)
            base = timed(device, step(pixels), args.warm, args.steps)
        b = self.shape["batch"]
        self.results["meta"]["model_tflop_per_step"] = float(f"{self.flops / 1e12:.4g}")
        self.results["meta"]["eager_executed_tflop_per_step"] = float(f"{eager_flops / 1e12:.4g}")
        self.baseline = base
        self.row("step", "eager baseline (full logits, HF loss)", **self.step_fields(base, b))

        fused = timed(device, step(pixels), args.warm, args.steps)
        self.row("step", "+ fused loss", **self.step_fields(fused, b))
        info = self.optimise(model)
        opt = timed(device, step(pixels), args.warm, args.steps)
        self.row("step", "+ bf16 frozen encoder + compiled blocks", **self.step_fields(opt, b), **info)
        from ablate.models.loss import liger_available

        if liger_available() and device.type == "cuda" and self.results["meta"].get("liger_check") == "ok":
            with chunked_loss():
                alt = timed(device, step(pixels), args.warm, args.steps)
            self.row("step", "  same, chunked PyTorch CE instead of Liger", **self.step_fields(alt, b))
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            feats = model.encoder(pixels)
        cached = timed(device, step(feats=feats), args.warm, args.steps)
        self.row("step", "  same, features given (feature cache)", **self.step_fields(cached, b, encoder=False))
        self.model, self.optimizer, self.scheduler, self.cfg = model, optimizer, scheduler, cfg
        self.on_gpu, self.pixels, self.feats = on_gpu, pixels, feats
        self.optimised = opt

    def step_fields(self, m: dict, batch: int, encoder: bool = True) -> dict:
        flops = self.flops if encoder else self.flops - self.encoder_flops()
        out = {"step_ms": m["step_ms"], "samples_s": batch / (m["step_ms"] / 1000),
               "mfu": flops / (m["step_ms"] / 1000) / (self.peak * 1e12), "peak_gib": m["peak_gib"],
               "first_steps_s": m["first_steps_s"], "loss_first": m["losses"][0], "loss_last": m["losses"][-1]}
        if hasattr(self, "baseline"):
            out["speedup"] = self.baseline["step_ms"] / m["step_ms"]
        return out

    def encoder_flops(self) -> float:
        e, n = self.shape["encoder"], (self.shape["resolution"] // self.shape["encoder"]["patch_size"]) ** 2
        per_layer = 2 * n * (4 * e["hidden_size"] ** 2 + 2 * e["hidden_size"] * e["intermediate_size"])
        per_layer += 4 * n * n * e["hidden_size"]
        return float(self.shape["batch"] * e["num_hidden_layers"] * per_layer)

    # -- 2. the loader --
    def part_loader(self) -> None:
        from ablate.models.features import FeatureCache, ImageFeatures
        from ablate.train.speed import prefetch_batches

        args, device, model = self.args, self.device, self.model
        b, clip = self.shape["batch"], self.cfg.train.grad_clip
        opt, sch = self.optimizer, self.scheduler
        live = ImageFeatures(model.encoder, None, frozen=True)
        cache = FeatureCache()
        cached = ImageFeatures(model.encoder, cache, frozen=True)

        def run(source, features_obj, name, **extra):
            model.features = features_obj
            stream = prefetch_batches(source, model) if extra.pop("prefetch", True) else source
            try:
                m = timed(device, lambda: train_step(model, next(stream), opt, sch, clip, device),
                          args.warm, args.steps)
            finally:
                if hasattr(stream, "close"):
                    stream.close()
            self.row("loader", name, step_ms=m["step_ms"], samples_s=b / (m["step_ms"] / 1000),
                     vs_data_on_gpu=m["step_ms"] / extra.get("ref_ms", self.optimised["step_ms"]))

        run(self.batches(seed=1), live, "disk images, prefetch thread, no cache")
        with torch.no_grad():   # warm the cache on the images the next run will read
            for batch, _ in zip(self.batches(seed=2), range(args.warm + args.steps)):
                cached(batch.images, device)
        gpu_feats = timed(device, lambda: train_step(model, self.on_gpu, opt, sch, clip, device,
                                                     features=self.feats), args.warm, args.steps)
        self.row("loader", "features already on the GPU", step_ms=gpu_feats["step_ms"],
                 samples_s=b / (gpu_feats["step_ms"] / 1000))
        run(self.batches(seed=2), cached, "disk batches, prefetch thread, warm cache", ref_ms=gpu_feats["step_ms"])
        run(self.batches(seed=3), live, "no prefetch: images read in the step", prefetch=False)
        model.features = cached

    # -- 3. evaluation --
    def part_eval(self) -> None:
        from PIL import Image

        device = self.device
        cfg, model, _, _ = self.build(steps=1)
        model.eval()
        n = self.shape["questions"]
        images = [Image.open(p).convert("RGB") for p in self.paths[:n]]
        contexts = [[img, "w1 w2 w3"] for img in images]
        for label, batch, autocast in (("float32, batch 32", 32, False), ("bf16 autocast, batch 32", 32, True),
                                       ("bf16 autocast, batch 128", 128, True)):
            ctx = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
            with ctx:
                model.generate(contexts[:min(batch, n)], max_new_tokens=4)     # warm-up
                sync(device)
                start = time.perf_counter()
                for i in range(0, n, batch):
                    model.generate(contexts[i:i + batch], max_new_tokens=4)
                sync(device)
            seconds = time.perf_counter() - start
            self.row("eval", f"generate, {label}", questions_s=n / seconds, questions=n)
        del model

    # -- 4. the grid --
    def grid(self, name: str, optimised: bool, steps: int, use_cache: bool = True) -> dict:
        from ablate.models.features import FeatureCache
        from ablate.train.loop import train
        from ablate.train.speed import prefetch_batches, reference_forward

        cache = FeatureCache(max_bytes=24 * 2**30) if use_cache else None
        start = time.perf_counter()
        cells, graphs = [], []
        for k, (tokens, connector) in enumerate([(t, c) for t in self.shape["grid_tokens"] for c in CONNECTORS]):
            cell_start = time.perf_counter()
            cfg, model, optimizer, scheduler = self.build(connector, tokens, steps, cache, use_cache)
            clock = Clock(self.device)
            batches = self.batches(tokens, seed=k)
            if optimised:
                self.optimise(model)
                stream = prefetch_batches(batches, model)
                try:
                    train(model, stream, cfg.train, optimizer, scheduler, clock)
                finally:
                    stream.close()
            else:
                with reference_forward(model):
                    train(model, batches, cfg.train, optimizer, scheduler, clock)
            sync(self.device)
            cells.append({"connector": connector, "tokens": tokens, "wall_s": time.perf_counter() - cell_start,
                          "build_s": clock.times[0] - cell_start if clock.times else None,
                          "times": [t - cell_start for t in clock.times], "final_loss": clock.losses[-1]})
            graphs.append(dynamo_graphs())
            del model, optimizer, scheduler, batches
            stream = None
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        wall = time.perf_counter() - start
        builds = [c["build_s"] - (c["times"][1] - c["times"][0]) for c in cells if len(c["times"]) > 1]
        if builds and not optimised:
            self.build_s = statistics.fmean(builds)     # building a cell's model (no compilation)
        self.row("grid", name, wall_s=wall, steps_per_cell=steps, cells=len(cells),
                 cell_wall_s=[round(c["wall_s"], 1) for c in cells],
                 to_first_step_s=[round(c["build_s"], 1) for c in cells if c["build_s"] is not None],
                 dynamo_graphs=graphs,
                 cache_hits=cache.hits if cache else None, cache_misses=cache.misses if cache else None)
        return {"wall_s": wall, "cells": cells}

    def part_grid(self) -> None:
        """Eager baseline grid and optimised grid, both with the feature cache, `--grid-steps` steps per cell."""
        self.eager_grid = self.grid("eager baseline, feature cache", False, self.args.grid_steps)
        self.fast_grid = self.grid("optimised, feature cache", True, self.args.grid_steps)
        self.row("grid", "optimised / eager wall time", ratio=self.fast_grid["wall_s"] / self.eager_grid["wall_s"])

    # -- 6. a whole cell, speed path off / on --
    def whole_cell(self, name: str, speed: bool, processes: int = 1) -> dict:
        batch = self.shape["batch"] * processes
        config = whole_cell_config(self.specs, self.shape, self.args.cell_steps, batch, speed, self.compile)
        remaining = max(60.0, self.args.limit_s + 120 - self.elapsed())
        synthetic = self.args.synthetic_data or importlib.util.find_spec("datasets") is None
        result = run_whole_cell(self.root, config, name, processes, self.args.threads, remaining,
                                cpu=self.device.type == "cpu", synthetic=self.shape if synthetic else None)
        return {**cell_fields(result, batch), "data": "synthetic" if synthetic else "world"}

    def build_small_world(self) -> None:
        """The whole cells' world, built once before they are timed (every cell reads it from the cache)."""
        from ablate.config.schema import WorldConfig
        from ablate.workspace import Workspace
        from ablate.world import build_world

        if not getattr(self, "world_built", False):
            t = time.perf_counter()
            build_world(WorldConfig(**SMALL_WORLD, image_size=self.shape["image_px"]),
                        Workspace.create(self.root / "home").cache)
            self.world_built = True
            self.row("cell", "small world built (not timed in the cells)", seconds=time.perf_counter() - t)

    def part_cell(self) -> None:
        switches = speed_switches()
        if not switches:
            self.row("cell", "skipped: this version has no speed switches in train: (the grid part compares "
                     "eager and optimised)")
            return
        self.build_small_world()
        off = self.whole_cell("cell-speed-off", speed=False)
        self.row("cell", "whole cell, speed path off", **off)
        self.cell_on = on = self.whole_cell("cell-speed-on", speed=True)
        self.row("cell", "whole cell, speed path on (auto)", **on, speedup=off["step_ms"] / on["step_ms"])
        self.row("cell", "on / off", wall_ratio=on["wall_s"] / off["wall_s"],
                 samples_s_ratio=on["samples_s"] / off["samples_s"],
                 peak_ratio=(on["peak_gib"] / off["peak_gib"]) if on["peak_gib"] and off["peak_gib"] else None)

    # -- 7. data parallel: 1 process against N --
    def dp_processes(self) -> int:
        if self.args.dp_procs:
            return self.args.dp_procs
        return torch.cuda.device_count() if self.device.type == "cuda" else 1

    def part_dp(self) -> None:
        n = self.dp_processes()
        if n < 2:
            self.row("dp", "skipped: one GPU visible (--dp-procs N to force)", gpus=n)
            return
        self.build_small_world()
        one = getattr(self, "cell_on", None) or self.whole_cell("dp-1", speed=True)
        self.row("dp", "1 process, speed path on", **one, samples_s_per_gpu=one["samples_s"])
        many = self.whole_cell(f"dp-{n}", speed=True, processes=n)
        per = many["samples_s"] / n
        self.row("dp", f"{n} processes, batch {n} x {self.shape['batch']}", **many, samples_s_per_gpu=per,
                 weak_scaling_efficiency=per / one["samples_s"], speedup=many["samples_s"] / one["samples_s"])

    def part_nocache(self) -> None:
        """The optimised grid without the feature cache, against the cached grid's first steps of every cell."""
        few = min(self.args.nocache_steps, self.args.grid_steps)
        if not hasattr(self, "fast_grid"):
            self.fast_grid = self.grid(f"optimised, feature cache, {few} steps/cell", True, few)
        cells = self.fast_grid["cells"]
        truncated = sum(c["times"][few - 1] for c in cells if len(c["times"]) >= few)
        self.row("grid", f"optimised, feature cache, first {few} steps/cell", wall_s=truncated)
        nocache = self.grid(f"optimised, no feature cache, {few} steps/cell", True, few, use_cache=False)
        self.row("grid", "no cache / cache wall time (same steps)", ratio=nocache["wall_s"] / truncated)


def load_images(paths: list[str]):
    from ablate.models.features import load_images as load

    return load(paths)


def dynamo_graphs() -> int:
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
    except Exception:
        return -1


def markdown(results: dict) -> str:
    meta = results["meta"]
    lines = [f"# ablate GPU benchmark ({meta.get('device')}, {meta.get('date')})", "",
             ", ".join(f"{k}: {v}" for k, v in meta.items()), "", "| part | variant | figures |", "|---|---|---|"]
    for row in results["rows"]:
        figures = ", ".join(f"{k} {v}" for k, v in row.items() if k not in {"part", "name", "losses"})
        lines.append(f"| {row['part']} | {row['name']} | {figures} |")
    return "\n".join(lines) + "\n\n" + summary(results)


SUMMARY = [  # (part, row name starts with, figure, label): the short table printed at the end
    ("step", "+ bf16 frozen encoder", "speedup", "step: optimised / eager speed-up"),
    ("step", "+ bf16 frozen encoder", "mfu", "step: optimised MFU"),
    ("grid", "optimised / eager", "ratio", "grid: optimised / eager wall time"),
    ("cell", "whole cell, speed path off", "samples_s", "whole cell, speed off: samples/s"),
    ("cell", "whole cell, speed path on", "samples_s", "whole cell, speed on: samples/s"),
    ("cell", "on / off", "wall_ratio", "whole cell: on / off wall time"),
    ("cell", "whole cell, speed path on", "peak_gib", "whole cell, speed on: peak GiB"),
    ("dp", "1 process", "samples_s_per_gpu", "dp: samples/s per GPU, 1 process"),
    ("dp", "", "samples_s_per_gpu", "dp: samples/s per GPU, N processes"),
    ("dp", "", "weak_scaling_efficiency", "dp: weak-scaling efficiency"),
    ("eval", "generate, bf16 autocast, batch 32", "questions_s", "eval: questions/s (bf16, batch 32)"),
]


def summary(results: dict) -> str:
    """The headline figures, one line each (parts that did not run are left out)."""
    lines = ["| figure | value |", "|---|---|"]
    for part, start, key, label in SUMMARY:
        rows = [r for r in results["rows"] if r["part"] == part and r["name"].strip().startswith(start)
                and r.get(key) is not None]
        if rows:
            value = rows[-1][key]
            if "N processes" in label:
                label = label.replace("N", str(rows[-1].get("processes", "N")))
            lines.append(f"| {label} | {value:.3g} |" if isinstance(value, float) else f"| {label} | {value} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU test of the script)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is there")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for gpu_results.json / .md")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
    parser.add_argument("--steps", type=int, default=12, help="timed steps per step measurement")
    parser.add_argument("--warm", type=int, default=3, help="warm-up steps (compilation happens here)")
    parser.add_argument("--grid-steps", type=int, default=150,
                        help="steps per cell of the grid part (150 since the cell and dp parts joined the run)")
    parser.add_argument("--nocache-steps", type=int, default=60, help="steps per cell of the no-cache grid")
    parser.add_argument("--limit-s", type=float, default=560,
                        help="skip a late part (cell, dp, loader, eval, nocache) whose estimated end is past this "
                             "many seconds")
    parser.add_argument("--cell-steps", type=int, default=100, help="training steps of the whole-cell runs")
    parser.add_argument("--dp-procs", type=int, default=0,
                        help="processes of the data-parallel run (default: the visible GPUs; 2+ forces it, "
                             "also on the CPU with gloo)")
    parser.add_argument("--synthetic-data", action="store_true",
                        help="whole cells train on synthetic batches over the world's images (the default when "
                             "`datasets` is not installed) instead of the world's data pipeline")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads when running on the CPU")
    args = parser.parse_args(argv)
    if args.tiny and "--grid-steps" not in " ".join(argv or sys.argv):
        args.grid_steps, args.nocache_steps, args.steps = 6, 3, 4
    if args.tiny and "--cell-steps" not in " ".join(argv or sys.argv):
        args.cell_steps = 4
    bench = Bench(args)
    print(json.dumps(bench.results["meta"]), flush=True)
    bench.setup()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if "loader" in parts and "step" not in parts:
        parts.append("step")
    for part in PARTS:
        if part not in parts:
            continue
        if part in LATE and bench.elapsed() + bench.estimate(part) > args.limit_s:
            bench.row(part, "skipped: would not end within --limit-s", limit_s=args.limit_s,
                      elapsed_s=bench.elapsed(), estimate_s=bench.estimate(part))
            continue
        try:
            getattr(bench, f"part_{part}")()
        except Exception as err:  # one failing part must not lose the others' figures
            import traceback

            traceback.print_exc()
            bench.row(part, "FAILED", error=f"{type(err).__name__}: {err}"[:300])
    bench.row("total", "script wall time", seconds=bench.elapsed())
    bench.stack.close()
    shutil.rmtree(bench.root, ignore_errors=True)   # backbones, images, whole cells' workspace: gigabytes at full size
    print(markdown(bench.results))
    print(summary(bench.results))
    return bench.results


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == WORKER_FLAG:
        sys.exit(cell_worker(sys.argv[2]))
    main()
