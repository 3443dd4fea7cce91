"""Careless and hostile grid files (tests/config/bad_grids/, one per refusal): each is refused by `ablate run` with
exit code 2 and one paragraph naming the file and the key, before anything is created on disk."""
import time
from pathlib import Path

import pytest

from ablate.cli import main

BAD = Path(__file__).parent / "bad_grids"
REPO = Path(__file__).resolve().parents[2]

# file -> the key the message must name (None: a whole-file problem, the file alone is named)
CASES = {
    "alias_bomb_mappings.yaml": "base.connector.options",
    "billion_laughs_description.yaml": "description",
    "binary_file.yaml": None,
    "boolean_batch_size.yaml": "train.batch_size",
    "boolean_lr.yaml": "train.lr",
    "boolean_seeds.yaml": "seeds",
    "bootstrap_unreachable.yaml": "eval.bootstrap",
    "batch_size_unreachable.yaml": "train.batch_size",
    "compile_maybe.yaml": "train.compile",
    "connector_depth_negative.yaml": "connector.options",
    "custom_task_builtin_name.yaml": "eval.custom_tasks.name",
    "duplicate_nested_key.yaml": "base.train",
    "duplicate_top_level_key.yaml": "axes",
    "exclude_key_not_an_axis.yaml": "exclude.encoder.resolution",
    "exclude_value_typo.yaml": "exclude.connector.name",
    "huge_integer.yaml": "base.train.seed",
    "include_key_typo.yaml": "connector.nam",
    "infinite_lr.yaml": "base.train.lr",
    "lora_unknown_target_module.yaml": "llm.lora.target_modules",
    "missing_custom_task_file.yaml": "eval.custom_tasks.path",
    "missing_data_source.yaml": "data.sources.path",
    "name_absolute_path.yaml": "name",
    "name_path_traversal.yaml": "name",
    "nan_anywhere.yaml": "axes.data.mixture.broken.caption",
    "negative_seed.yaml": "seeds",
    "prefetch_one.yaml": "train.prefetch",
    "recursive_alias.yaml": None,
    "seed_out_of_range.yaml": "train.seed",
    "steps_unreachable.yaml": "train.steps",
    "timm_weights_not_cached.yaml": "encoder.name",
    "too_many_cells.yaml": "axes",
    "unknown_connector_option.yaml": "connector.options",
    "world_n_train_unreachable.yaml": "data.world.n_train",
}
# Refused while the YAML is read, before any registry is imported: a hang here (what alias bombs did) is a failure.
READ_ONLY = {"alias_bomb_mappings.yaml", "billion_laughs_description.yaml", "binary_file.yaml", "recursive_alias.yaml",
             "huge_integer.yaml"}
# Sizes that would hang or fail after training: refused by the schema's bounds, at the cost of reading the file.
UNREACHABLE = {"bootstrap_unreachable.yaml", "batch_size_unreachable.yaml", "steps_unreachable.yaml",
               "world_n_train_unreachable.yaml"}


def ablate(tmp_path: Path, *argv: str) -> int:
    return main(["--home", str(tmp_path / "home"), "--reports", str(tmp_path / "reports"), *argv])


def test_every_bad_grid_file_is_a_case():
    assert sorted(p.name for p in BAD.iterdir()) == sorted(CASES)


# the exact timm check imports timm (10-25 s on 2 loaded cores); the LoRA check builds the LM on the meta device
# (imports transformers: 5 s)
SLOW = {"timm_weights_not_cached.yaml", "lora_unknown_target_module.yaml"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(CASES)])
def test_bad_grid_is_refused_with_its_key_before_anything_is_created(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)   # relative paths in the grid, and the default .ablate/ and reports/, land here
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.process_time()   # CPU time of this process: what a hang spends, whatever the load
    code = ablate(tmp_path, "run", str(BAD / name), "--dry-run")
    elapsed = time.process_time() - started
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert err.startswith(f"error: {BAD / name}") and err.count("\n") == 1, err   # one paragraph, the file first
    key = CASES[name]
    if key is not None:
        assert f"key '{key}" in err, err
    assert out == ""
    assert list(tmp_path.iterdir()) == [], "nothing may be created for a refused grid"
    if name in READ_ONLY | UNREACHABLE:
        assert elapsed < 10, f"{name} took {elapsed:.1f} s of CPU: it must be refused at once, not expanded or run"


def test_a_refused_grid_creates_no_workspace_for_a_real_run_or_ls(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for argv in (["run", str(BAD / "boolean_lr.yaml")], ["ls", str(BAD / "name_path_traversal.yaml")],
                 ["report", str(BAD / "duplicate_top_level_key.yaml")]):
        assert ablate(tmp_path, *argv) == 2
    assert "error:" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_max_cells_lets_a_big_grid_through(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert ablate(tmp_path, "run", str(BAD / "too_many_cells.yaml"), "--dry-run", "--max-cells", "1100") == 0
    out = capsys.readouterr().out
    assert "1100 cells" in out and "dry run" in out
    assert list(tmp_path.iterdir()) == []   # a dry run writes nothing either


def test_the_dry_run_warns_about_a_resolution_that_is_not_a_multiple_of_the_patch(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    grid = tmp_path.parent / f"{tmp_path.name}-grid.yaml"
    grid.write_text('base:\n  encoder: {name: "zoo:clip-s", resolution: 100}\n  connector: {tokens: 16}\n')
    assert ablate(tmp_path, "run", str(grid), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "warning: encoder.resolution 100 is not a multiple of the patch size 8 of zoo:clip-s" in out
    assert "use 96 or 104" in out


def test_timm_random_weights_need_no_cache(tmp_path, monkeypatch):
    """The same encoder as timm_weights_not_cached.yaml with @random passes the spec check offline."""
    from ablate.config.errors import CellCheckError
    from ablate.config.spec import Spec
    from ablate.models.families.timm import check_timm as _check_timm

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _check_timm("encoder.name", Spec.parse("timm:vit_tiny_patch16_224@random"))
    with pytest.raises(CellCheckError, match="does not exist"):
        _check_timm("encoder.name", Spec.parse(f"timm:vit_tiny_patch16_224@{tmp_path / 'none.safetensors'}"))


def test_the_dry_run_estimates_each_cells_step_memory_and_warns_past_the_machine(tmp_path, monkeypatch, capsys):
    from ablate.models.sizes import GIB, machine_memory_bytes, step_activation_bytes
    from ablate.resolve import load_grid

    monkeypatch.chdir(tmp_path)
    grid = tmp_path.parent / f"{tmp_path.name}-grid.yaml"
    grid.write_text('base:\n  encoder: {name: "zoo:clip-s", resolution: 96}\n  connector: {tokens: 16}\n'
                    '  data: {max_length: 4096}\naxes:\n  train.batch_size: [16, 60000]\n')
    small, big = (step_activation_bytes(c.config) for c in load_grid(grid).cells)
    assert big == pytest.approx(small * 60000 / 16)        # activations grow with the rows of a step
    assert ablate(tmp_path, "run", str(grid), "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.count("GiB a training step;") == 2
    assert (big > machine_memory_bytes()) == ("warning: cell 2" in out), out
    assert f"about {big / GIB:,.0f} GiB of activations" in out and "lower train.batch_size" in out
    assert "warning: cell 1" not in out
    assert list(tmp_path.iterdir()) == []


def test_the_dry_run_estimates_each_cells_training_flops_and_warns_where_no_device_could_finish(tmp_path, monkeypatch,
                                                                                                capsys):
    from ablate.models.sizes import H100_FLOPS, training_flops
    from ablate.resolve import load_grid

    monkeypatch.chdir(tmp_path)
    grid = tmp_path.parent / f"{tmp_path.name}-grid.yaml"
    grid.write_text('base:\n  encoder: {name: "zoo:clip-s", resolution: 96}\n  connector: {tokens: 16}\n'
                    '  llm: {name: "zoo:lm-s"}\n  data: {max_length: 4096}\n  train: {batch_size: 60000}\n'
                    'axes:\n  train.steps: [400, 9000000]\n')
    short, long = (training_flops(c.config) for c in load_grid(grid).cells)
    # zoo:lm-s: 4 layers of width 128, a vocabulary of at most 1,024: 6 x parameters x rows x tokens x steps
    assert short == pytest.approx(6 * (4 * 12 * 128**2 + 1024 * 128) * 60000 * 4096 * 400)
    assert long == pytest.approx(short * 9000000 / 400)
    assert ablate(tmp_path, "run", str(grid), "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.count("training FLOPs: ") == 2 and "on one CPU core" in out
    assert long / H100_FLOPS > 30 * 86400 > short / H100_FLOPS
    assert "warning: cell 2" in out and "even on one H100: lower train.steps" in out
    assert not any(line.startswith("warning: cell 1") and "H100" in line for line in out.splitlines())
    assert list(tmp_path.iterdir()) == []
