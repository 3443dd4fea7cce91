"""Tiny backbones for the speed-path tests: a SigLIP tower and a Qwen2 LM, saved with save_pretrained."""
from __future__ import annotations

import pytest
import torch

from benchmarks.gpubench import common


@pytest.fixture(scope="session")
def perf_setup(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("perf")
    shape = common.SHAPES["tiny"]
    specs = common.write_backbones(root, shape, torch.device("cpu"))
    paths = common.write_images(root / "images", 16, shape["image_px"])
    return {"bench": common, "root": root, "shape": shape, "specs": specs, "paths": paths}
