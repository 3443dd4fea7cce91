"""The structure the code promises (docs/architecture.md, "Layers"), checked on every test run."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_imports_flow_one_way_through_the_layers():
    """import-linter's layers contract in pyproject.toml: no package imports a layer above its own, function-local
    imports included, so there is no import cycle between packages."""
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: pip install -e '.[test]'")
    result = subprocess.run([ruff, "check", "--no-cache", "ablate", "tests", "benchmarks"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cli_and_validation_do_not_import_the_training_stack():
    """`ablate --help` and the grid layer load without torch, mlflow or lmms-eval (start-up time)."""
    code = ("import sys, ablate.cli, ablate.config.grid, ablate.config.schema; "
            "print(sorted(m for m in ('torch', 'mlflow', 'lmms_eval', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_dry_run_loads_neither_the_training_nor_the_tracking_stack(tmp_path):
    """`ablate run GRID --dry-run` validates with the registries only: torch for the connectors' token rules, but not
    transformers, peft, datasets, pandas, mlflow or lmms-eval (seconds of start-up each)."""
    code = ("import sys; from ablate.cli import main; "
            f"rc = main(['run', {str(ROOT / 'grids' / 'connectors.yaml')!r}, '--dry-run', '--home', "
            f"{str(tmp_path / 'home')!r}]); "
            "print(rc, sorted(m for m in ('transformers', 'peft', 'datasets', 'pandas', 'mlflow', 'lmms_eval') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout + out.stderr
    assert not (tmp_path / "home").exists()
