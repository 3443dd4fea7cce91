import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

from ablate.config.schema import WorldConfig
from ablate.world import build_world

TINY = {"n_train": 24, "n_test": 16, "n_demo": 8, "n_text_docs": 16, "n_interleaved_docs": 8}


@pytest.fixture(scope="session")
def tiny_cfg() -> WorldConfig:
    return WorldConfig(seed=3, **TINY)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory, tiny_cfg):
    return build_world(tiny_cfg, tmp_path_factory.mktemp("worlds"))
