"""Real benchmarks resolve by name without downloading; offline they fail early with a clear message."""
import pytest

pytest.importorskip("lmms_eval")

from colour_world import ColourGenerator  # noqa: E402  (at collection time: this folder's conftest)

from ablate.config.schema import EvalConfig  # noqa: E402
from ablate.evaluation.benchmarks import BenchmarkUnavailable, check_available, is_builtin, resolve_benchmark  # noqa: E402
from ablate.evaluation.tasks import plan  # noqa: E402


@pytest.mark.parametrize(
    ("name", "dataset"),
    [("vqav2_val", "lmms-lab-encoder/VQAv2"), ("textvqa_val", "lmms-lab-encoder/textvqa"),
     ("vqav2_val_lite", "lmms-lab-encoder/LMMs-Eval-Lite"), ("textvqa_val_lite", "lmms-lab-encoder/LMMs-Eval-Lite")],
)
def test_benchmarks_resolve_to_their_hub_dataset(name, dataset):
    bench = resolve_benchmark(name)
    assert bench.dataset_path == dataset and bench.metric == "exact_match"
    assert bench.yaml_path.endswith(f"{name}.yaml")


def test_offline_benchmark_fails_with_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(BenchmarkUnavailable, match="lmms-lab-encoder/VQAv2.*custom task"):
        check_available(resolve_benchmark("vqav2_val"))


def test_plan_mixes_embedded_and_benchmark_tasks_and_rejects_what_cannot_run(world_dir):
    planned = plan(EvalConfig(tasks=["world_vqa", "textvqa_val"], shots=[0]), world_dir)
    assert [(p.lmms_name, p.spec is None) for p in planned] == [("world_vqa", False), ("textvqa_val", True),
                                                               ("world_vqa_blind", False)]   # no blind benchmark
    with pytest.raises(ValueError, match="few-shot is built for embedded and custom tasks"):
        plan(EvalConfig(tasks=["vqav2_val"], shots=[4]), world_dir)
    with pytest.raises(ValueError, match="unknown task 'vqa_v9'"):
        plan(EvalConfig(tasks=["vqa_v9"]), world_dir)
    with pytest.raises(FileNotFoundError, match="build the world first"):
        plan(EvalConfig(tasks=["world_vqa"]), world_dir / "nowhere")


def test_generated_names_are_not_builtin():
    assert is_builtin("vqav2_val") and is_builtin("textvqa_val")
    for name in ("world_vqa", "world_textvqa", "world_caption", "world_vqa_4shot"):
        assert not is_builtin(name)


def test_evaluate_on_an_uncached_benchmark_offline_raises_before_running(monkeypatch, tmp_path, world_dir):
    from ablate.evaluation import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    gen = ColourGenerator()
    with pytest.raises(BenchmarkUnavailable, match="textvqa"):
        evaluate(gen, EvalConfig(tasks=["world_vqa", "textvqa_val"]), world_dir, tmp_path / "out")
    assert gen.contexts == []


def test_known_task_names_for_grid_checks():
    from ablate.evaluation.tasks import known_task_names

    assert known_task_names()[:3] == ["world_vqa", "world_textvqa", "world_caption"]
    assert "vqav2_val" in known_task_names() and "textvqa_val_lite" in known_task_names()
    cfg = EvalConfig(custom_tasks=[{"name": "signs", "path": "/x.jsonl"}])
    assert known_task_names(cfg)[-1] == "signs"
