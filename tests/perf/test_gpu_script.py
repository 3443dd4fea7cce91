"""benchmarks/gpu.py runs on the CPU at tiny shapes and writes its table (the GPU run uses the same code)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ablate.config.schema import CellConfig, TrainConfig
from benchmarks.gpubench import cli, common, dp, wholecell


def test_tiny_step_and_eval_parts(tmp_path):
    results = cli.main(["--tiny", "--no-compile", "--parts", "step,eval", "--steps", "2", "--warm", "1",
                        "--out", str(tmp_path), "--threads", "1"])
    rows = {r["name"].strip(): r for r in results["rows"]}
    assert "FAILED" not in rows
    eager, fused = rows["eager baseline (full logits, HF loss)"], rows["+ fused loss"]
    assert eager["speedup"] == 1.0 and eager["samples_s"] > 0 and 0 < fused["mfu"] < 1
    assert results["meta"]["liger_check"].startswith("not used")
    assert results["meta"]["model_tflop_per_step"] < results["meta"]["eager_executed_tflop_per_step"]
    assert rows["generate, bf16 autocast, batch 32"]["questions_s"] > 0
    saved = json.loads((tmp_path / "gpu_results.json").read_text())
    assert len(saved["rows"]) == len(results["rows"])
    assert "| step | + fused loss |" in (tmp_path / "gpu_results.md").read_text()


def test_synthetic_batches_label_only_text():
    batch = next(common.synthetic_batches(["a.png", "b.png", "c.png"], 4, 6, 2, 50, seed=0))
    assert batch.input_ids.shape == (2, 1 + 4 + 5)
    assert (batch.input_ids[:, 1:5] == 4).all() and (batch.labels[:, :5] == -100).all()
    assert torch.equal(batch.labels[:, 5:], batch.input_ids[:, 5:]) and len(batch.images) == 2


@pytest.mark.slow
def test_tiny_whole_cell_speed_off_on_and_two_process_data_parallel(tmp_path):
    """Parts cell and dp on the CPU: fresh worker processes run `run_cell` (2 ranks under gloo for dp), on the
    synthetic batches the GPU image (no `datasets`) uses."""
    if not wholecell.speed_switches():
        pytest.skip("no speed switches in train: in this version")
    results = cli.main(["--tiny", "--no-compile", "--parts", "cell,dp", "--dp-procs", "2", "--threads", "1",
                        "--cell-steps", "3", "--synthetic-data", "--out", str(tmp_path)])
    rows = {r["name"].strip(): r for r in results["rows"]}
    assert not any("FAILED" in name or name.startswith("skipped") for name in rows), rows
    off, on = rows["whole cell, speed path off"], rows["whole cell, speed path on (auto)"]
    for row in (off, on):
        assert row["processes"] == 1 and row["samples_s"] > 0 and row["peak_gib"] > 0 and row["wall_s"] > 0
    assert on["switches_on"] == "-"                      # auto is off on the CPU: the same path twice
    assert on["data"] == "synthetic"
    assert on["loss_first"] == off["loss_first"]         # same seed, same data, same model
    two = rows["2 processes, batch 2 x 4"]
    assert two["processes"] == 2                         # both ranks joined one group (rank 0 logged 2)
    assert two["samples_s_per_gpu"] == pytest.approx(two["samples_s"] / 2, rel=1e-3)
    one = rows["1 process, speed path on"]
    assert two["weak_scaling_efficiency"] == pytest.approx(two["samples_s_per_gpu"] / one["samples_s"], rel=1e-3)
    assert math.isfinite(two["loss_last"])
    assert ("warning" in two) == (two["weak_scaling_efficiency"] > 1)
    assert "| dp: weak-scaling efficiency |" in (tmp_path / "gpu_results.md").read_text()
    ddp, fsdp = rows["ddp: 2 processes, LLM trained in full"], rows["fsdp: 2 processes, LLM trained in full"]
    for row in (ddp, fsdp):   # the LLM trained in full under each strategy: both ranks, finite losses
        assert row["processes"] == 2 and row["peak_gib_all"] > row["peak_gib"] > 0 and math.isfinite(row["loss_last"])
    assert ddp["loss_first"] == pytest.approx(fsdp["loss_first"], rel=1e-4)   # the same model and batch


def test_an_efficiency_above_one_is_printed_with_a_warning():
    one = {"samples_s": 10.0}
    assert "warning" not in dp.scaling(one, {"samples_s": 18.0}, 2)
    above = dp.scaling(one, {"samples_s": 26.0}, 2)
    assert above["weak_scaling_efficiency"] == pytest.approx(1.3) and "not a real figure" in above["warning"]


def test_whole_cell_config_turns_the_speed_path_off():
    shape = common.SHAPES["tiny"]
    specs = {"encoder": "hf:/e", "llm": "hf:/l"}
    off = CellConfig.model_validate(wholecell.whole_cell_config(specs, shape, 5, 8, speed=False))
    on = CellConfig.model_validate(wholecell.whole_cell_config(specs, shape, 5, 8, speed=True, compile_=False))
    assert (off.train.steps, off.train.batch_size, off.data.world.n_train) == (5, 8, wholecell.SMALL_WORLD["n_train"])
    for name in wholecell.speed_switches():
        assert getattr(off.train, name) is False
        assert getattr(on.train, name) == (False if name == "compile" else TrainConfig.model_fields[name].default)


def test_help_lists_the_options(capsys):
    """The script's options, in this process (the script as a process: the slow test below)."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "--dp-procs" in out and "--cell-steps" in out


@pytest.mark.slow
def test_help_runs_without_a_gpu():
    """`python benchmarks/gpu.py --help` as its own process: a fresh interpreter that imports torch (seconds)."""
    out = subprocess.run([sys.executable, "benchmarks/gpu.py", "--help"], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0 and "--dp-procs" in out.stdout and "--cell-steps" in out.stdout


def test_synthetic_stage_batches_take_this_process_rows_from_the_step_reached():
    from types import SimpleNamespace

    shape = common.SHAPES["tiny"]
    world = SimpleNamespace(read=lambda kind: [{"image": f"{i}.png"} for i in range(10)])
    cfg = SimpleNamespace(connector=SimpleNamespace(tokens=4), train=SimpleNamespace(batch_size=4, seed=0))
    stage = SimpleNamespace(seed=lambda seed: seed)
    whole = wholecell.synthetic_stage_batches(shape)(cfg, world, None)(stage, 0)
    first, second = next(whole), next(whole)
    mine = next(wholecell.synthetic_stage_batches(shape)(cfg, world, None, rows=slice(2, 4))(stage, 1))
    assert torch.equal(mine.input_ids, second.input_ids[2:4]) and mine.images == second.images[2:4]
    assert mine.n_images.tolist() == [1, 1] and not torch.equal(mine.input_ids, first.input_ids[2:4])
