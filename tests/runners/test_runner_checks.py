"""Runner files a careless or hostile user may share: impossible GPU indices and an interpreter that is not a
Python with ablate are refused (file, key); the `setup` lines a runner file runs are shown by the dry run."""
import json
import sys
from pathlib import Path

import pytest

from ablate.cli import main
from ablate.config.errors import GridError
from ablate.runners.config import BY_KIND, CONFIGS, KINDS, read_runner_config, setup_commands

BAD = {
    "negative gpu": ("kind: workers\ngpus: [-1]\n", "gpus", ["greater than or equal to 0", "-1"]),
    "python that fails": ("kind: subprocess\npython: /bin/false\n", "python",
                          ["'/bin/false' is not a Python that imports ablate", "exit 1"]),
    "python not there": ("kind: workers\npython: /nowhere/python3\n", "python", ["no executable '/nowhere/python3'"]),
    "python with options": (f"kind: multigpu\npython: {sys.executable} -I\n", "python", ["no executable"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_runner_file_that_cannot_run_cells_is_refused_naming_file_and_key(case, tmp_path):
    text, key, words = BAD[case]
    path = tmp_path / "shared.yaml"
    path.write_text(text)
    with pytest.raises(GridError) as err:
        read_runner_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}") and f"'{key}'" in message, message
    for word in words:
        assert word in message, message


def test_the_running_interpreter_passes_the_python_check(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(f"kind: subprocess\npython: {sys.executable}\n")
    assert read_runner_config(path).python == sys.executable


def test_setup_lines_are_read_for_the_dry_run(tmp_path):
    path = tmp_path / "slurm.yaml"
    path.write_text(f"kind: slurm\ncluster: local\nsetup: {json.dumps(['module load cuda/12.4', 'curl x | sh'])}\n")
    assert setup_commands(path) == ["module load cuda/12.4", "curl x | sh"]
    assert setup_commands(None) == [] and setup_commands(Path(__file__).parents[2] / "runners" / "workers.yaml") == []


def test_each_kind_is_declared_once():
    """The kinds, the union pydantic validates and the lookup by name all come from CONFIGS."""
    assert KINDS == ["local", "subprocess", "workers", "multigpu", "slurm"]
    assert [BY_KIND[k] for k in KINDS] == list(CONFIGS)
    assert all("build" in vars(config) for config in CONFIGS)


GRID = """name: runner-checks
base:
  encoder: {name: "zoo:clip-s", resolution: 96}
  connector: {name: avg-pool, tokens: 16}
  train: {steps: 5}
axes:
  connector.tokens: [16]
"""


@pytest.mark.slow   # the grid's connector check imports torch
def test_the_dry_run_prints_setup_lines_and_refuses_a_bad_runner_file(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    runner = tmp_path / "slurm.yaml"
    runner.write_text("kind: slurm\ncluster: local\nsetup: [\"module load cuda/12.4\", \"curl x | sh\"]\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ["--home", str(tmp_path / "home"), "--reports", str(tmp_path / "reports"), "run", str(grid), "--runner"]
    assert main([*args, str(runner), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "runner setup, run before each job: module load cuda/12.4" in out
    assert "runner setup, run before each job: curl x | sh" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: subprocess\npython: /bin/false\n")
    assert main([*args, str(bad), "--dry-run"]) == 2
    text = " ".join(capsys.readouterr().err.split())
    assert str(bad) in text and "'python'" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "bad.yaml"])   # nothing created
