"""The state of one benchmark run: its rows (printed and saved after each), the backbones and images it wrote, and
the helpers the parts share (a cell's model and optimiser, synthetic batches, the optimised path)."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from .common import SHAPES, cell_config, synthetic_batches, write_backbones, write_images
from .measure import chunked_loss, liger_check, matmul_peak_tflops
from .report import markdown


class Bench:
    """One run's state: the shapes, the device, the backbones and images on disk, the rows measured so far and
    what a part leaves for a later one (the step part's model, the grid's cells)."""

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

    # -- what the late parts' estimates start from --
    def step_s(self) -> float:
        """The optimised step's seconds as the step part measured it (a generous guess before it ran)."""
        return self.optimised["step_ms"] / 1000 if hasattr(self, "optimised") else 0.15

    def eager_step_s(self) -> float:
        return self.baseline["step_ms"] / 1000 if hasattr(self, "baseline") else 2 * self.step_s()

    def model_build_s(self) -> float:
        """Seconds to build a cell's model (no compilation), as the grid part measured it."""
        return getattr(self, "build_s", 10.0)

    def process_start_s(self) -> float:
        """A fresh process's start: imports, the world, the model, a cold compilation."""
        return self.model_build_s() + 45
