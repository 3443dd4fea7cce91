"""Runner tests: tiny grids (few steps, one small eval task), store helpers, a fault hook for child processes."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tinyworld import write_tiny_grid

REPO = Path(__file__).resolve().parents[2]
# the settings tests/conftest.py builds the tiny backbones' tokenizer from (the grid must use the same world)


@pytest.fixture
def make_grid(tmp_path, tiny_backbones):
    """Write a grid file over the tiny backbones: `axes` is YAML text (indented under `axes:`)."""

    def write(axes: str = "connector.name: [avg-pool, mlp]", steps: int = 8, checkpoint_every: int = 3,
              lr: float = 0.003, name: str = "tiny", extra: str = "", warmup: float = 0.0) -> Path:
        return write_tiny_grid(tmp_path, tiny_backbones, axes=axes, name=name, extra=extra,
                               train=f"steps: {steps}, batch_size: 4, checkpoint_every: {checkpoint_every}, lr: {lr}, "
                                     f"warmup_ratio: {warmup}",
                               evaluation="tasks: [world_vqa], limit: 6, bootstrap: 0, batch_size: 6, n_predictions: 0")

    return write


@pytest.fixture
def runner_file(tmp_path):
    def write(text: str, name: str = "runner.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def fault_env(tmp_path):
    """Environment that makes a child process misbehave at a training step (a sitecustomize on PYTHONPATH).

    fault_env({connector name: (action, step)}): action 'sigkill' (what the OOM killer does), 'hang' or 'exit'.
    A hanging child first writes `hung-<pid>` into the folder (`tmp_path / "faults"`): the event a test waits on."""

    def make(faults: dict[str, tuple[str, int]]) -> dict[str, str]:
        folder = tmp_path / "faults"
        folder.mkdir(exist_ok=True)
        (folder / "sitecustomize.py").write_text(textwrap.dedent(f"""
            import os, signal, time
            import ablate.cell as _cell
            FAULTS = {faults!r}
            _on_step = _cell.CellHooks.on_step
            def on_step(self, step, loss, lr):
                _on_step(self, step, loss, lr)
                action, at = FAULTS.get(self.cell.config.connector.name, (None, None))
                if step == at and action == "sigkill":
                    os.kill(os.getpid(), signal.SIGKILL)
                elif step == at and action == "hang":
                    open(os.path.join(os.path.dirname(__file__), f"hung-{{os.getpid()}}"), "w").close()
                    time.sleep(3600)
                elif step == at and action == "exit":
                    os._exit(7)
            _cell.CellHooks.on_step = on_step
            """))
        return {"PYTHONPATH": f"{folder}:{REPO}"}

    return make
