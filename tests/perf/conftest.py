"""Tiny backbones for the speed-path tests: a SigLIP tower and a Qwen2 LM, saved with save_pretrained."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def gpu_bench():
    """benchmarks/gpu.py as a module (it lives outside the package, beside the other benchmarks)."""
    if "ablate_gpu_bench" not in sys.modules:
        spec = importlib.util.spec_from_file_location("ablate_gpu_bench", ROOT / "benchmarks" / "gpu.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["ablate_gpu_bench"] = module
        spec.loader.exec_module(module)
    return sys.modules["ablate_gpu_bench"]


@pytest.fixture(scope="session")
def perf_setup(tmp_path_factory):
    torch.set_num_threads(1)
    bench = gpu_bench()
    root = tmp_path_factory.mktemp("perf")
    shape = bench.SHAPES["tiny"]
    specs = bench.write_backbones(root, shape, torch.device("cpu"))
    paths = bench.write_images(root / "images", 16, shape["image_px"])
    return {"bench": bench, "root": root, "shape": shape, "specs": specs, "paths": paths}


@pytest.fixture(scope="session")
def gpu_script():
    """The benchmarks/gpu.py module."""
    return gpu_bench()
