"""The tiny embedded world the root-level tests share (a module of its own: `from conftest import ...` resolves to
whichever conftest.py pytest loaded first under that name, so it breaks with the order tests run in)."""
from pathlib import Path

TINY_WORLD = {"image_size": 64, "n_train": 96, "n_test": 24, "n_demo": 12, "n_text_docs": 32,
              "n_interleaved_docs": 16}
# the same settings as the inside of a YAML flow mapping, for grids the tests write: `world: {{{TINY_WORLD_YAML}}}`
TINY_WORLD_YAML = ", ".join(f"{k}: {v}" for k, v in TINY_WORLD.items())
# `ablate run` in the test's own process (runners/local.yaml), for tests that patch or capture what a cell does; the
# default runner runs each cell in a process of its own, where a monkeypatch or caplog does not reach
IN_PROCESS = ["--runner", str(Path(__file__).resolve().parents[1] / "runners" / "local.yaml")]
