"""Fixtures of the evaluation tests; their helpers are in colour_world.py."""
from __future__ import annotations

from pathlib import Path

import pytest
from colour_world import make_world


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("world"))
