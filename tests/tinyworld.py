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


def write_tiny_grid(folder: Path, backbones: dict, *, axes: str, train: str, evaluation: str, name: str = "tiny",
                    extra: str = "") -> Path:
    """`<folder>/<name>.yaml`: a grid over the tiny backbones and world; `train` and `evaluation` are the insides of
    their YAML flow mappings, `extra` base settings and `axes` YAML text."""
    text = f"""name: {name}
base:
  encoder: {{name: "{backbones['encoder']}", resolution: 64}}
  llm: {{name: "{backbones['llm']}"}}
  connector: {{tokens: 16}}
  data: {{world: {{{TINY_WORLD_YAML}}}, max_length: 96}}
  train: {{{train},
          lr_multipliers: {{encoder: 0.0, connector: 1.0, llm: 0.5}}}}
  eval: {{{evaluation}}}
{extra}axes:
  {axes}
"""
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path
