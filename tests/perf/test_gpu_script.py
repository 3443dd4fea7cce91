"""benchmarks/gpu.py runs on the CPU at tiny shapes and writes its table (the GPU run uses the same code)."""
from __future__ import annotations

import json

import torch


def test_tiny_step_and_eval_parts(tmp_path, gpu_script):
    results = gpu_script.main(["--tiny", "--no-compile", "--parts", "step,eval", "--steps", "2", "--warm", "1",
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


def test_synthetic_batches_label_only_text(gpu_script):
    batch = next(gpu_script.synthetic_batches(["a.png", "b.png", "c.png"], 4, 6, 2, 50, seed=0))
    assert batch.input_ids.shape == (2, 1 + 4 + 5)
    assert (batch.input_ids[:, 1:5] == 4).all() and (batch.labels[:, :5] == -100).all()
    assert torch.equal(batch.labels[:, 5:], batch.input_ids[:, 5:]) and len(batch.images) == 2
