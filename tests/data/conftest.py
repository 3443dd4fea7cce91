import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
from PIL import Image

from ablate.config.schema import WorldConfig
from ablate.world import build_world
from ablate.world.tokenizer import build_tokenizer


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    cfg = WorldConfig(seed=1, n_train=16, n_test=4, n_demo=4, n_text_docs=12, n_interleaved_docs=6, image_size=64)
    return build_world(cfg, tmp_path_factory.mktemp("worlds"))


@pytest.fixture(scope="session")
def tok():
    return build_tokenizer(["a b c d e f g h the word is lamp red circle"])


@pytest.fixture
def png(tmp_path):
    """Write a tiny valid PNG and return its path."""
    def make(name: str, colour=(200, 0, 0)) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), colour).save(path)
        return str(path)
    return make
