"""Fixtures for the CPU benchmarks (`pytest benchmarks --benchmark-only`): a tiny world and tiny backbones."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

WORLD = {"image_size": 64, "n_train": 96, "n_test": 8, "n_demo": 8, "n_text_docs": 32, "n_interleaved_docs": 16}


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    from ablate.config.schema import WorldConfig
    from ablate.world import build_world

    return build_world(WorldConfig(**WORLD), tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    import torch

    torch.set_num_threads(2)
    from benchmarks.gpubench import common as bench

    root = tmp_path_factory.mktemp("bench")
    shape = bench.SHAPES["tiny"]
    return {"bench": bench, "root": root, "shape": shape,
            "specs": bench.write_backbones(root, shape, torch.device("cpu")),
            "paths": bench.write_images(root / "images", 32, shape["image_px"])}
