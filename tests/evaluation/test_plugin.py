"""The `ablate` model of the lmms-eval CLI: entry point, registry resolution, construction from a checkpoint."""
import importlib.metadata
import sys
import types

import pytest
from colour_world import ColourGenerator

pytest.importorskip("lmms_eval")


def test_entry_point_group_lists_ablate():
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="lmms_eval.models")}
    assert eps["ablate"].value == "ablate.evaluation.lmms_plugin:MANIFESTS"
    (manifest,) = eps["ablate"].load()
    assert manifest.model_id == "ablate"
    assert manifest.simple_class_path == "ablate.evaluation.checkpoint_model.CheckpointLMM"


def test_importing_the_plugin_does_not_import_lmms_eval():
    code = ("import sys, ablate.evaluation, ablate.evaluation.lmms_plugin; "
            "print(any(m.startswith('lmms_eval') for m in sys.modules))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.fixture
def fake_checkpoints(monkeypatch):
    loaded = []

    def load_for_eval(path, **options):
        loaded.append((path, options))
        return ColourGenerator()

    monkeypatch.setitem(sys.modules, "ablate.checkpoint", types.SimpleNamespace(load_for_eval=load_for_eval))
    return loaded


def test_registry_builds_the_model_from_model_args(fake_checkpoints):
    from lmms_eval.models import get_model

    from ablate.evaluation.checkpoint_model import CheckpointLMM

    cls = get_model("ablate")
    assert cls is CheckpointLMM
    lm = cls.create_from_arg_string("checkpoint=/runs/abc/final,max_new_tokens=3", {"batch_size": 8, "device": "cpu"})
    assert fake_checkpoints == [("/runs/abc/final", {"device": "cpu"})]
    assert lm.batch_size == 8 and lm.max_new_tokens == 3
    assert isinstance(lm.generator, ColourGenerator)
    with pytest.raises(TypeError, match="unknown model_args"):
        cls.create_from_arg_string("checkpoint=x,temperature=1")


def test_simple_evaluate_by_model_name(fake_checkpoints, world_dir, tmp_path):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    from ablate.config.schema import EvalConfig
    from ablate.evaluation import write_tasks

    write_tasks(EvalConfig(tasks=["world_vqa"], shots=[2]), world_dir, tmp_path)
    out = simple_evaluate(model="ablate", model_args="checkpoint=/ck", tasks=["world_vqa_2shot"],
                          task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False),
                          bootstrap_iters=0, batch_size=4)
    assert out["results"]["world_vqa_2shot"]["vqa,none"] == 1.0
    assert fake_checkpoints[0][0] == "/ck"


def test_module_cli_writes_task_folders_and_prints_the_command(world_dir, tmp_path, capsys):
    from ablate.evaluation.__main__ import main

    assert main([str(world_dir), str(tmp_path), "--tasks", "world_vqa", "--shots", "0", "4"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world_vqa", "world_vqa_4shot", "world_vqa_blind",
                                                          "world_vqa_blind_4shot"]   # and its blind evaluation
    out = capsys.readouterr().out
    assert f"--include_path {tmp_path} --tasks world_vqa,world_vqa_4shot,world_vqa_blind,world_vqa_blind_4shot" in out
    assert "--model ablate --model_args checkpoint=" in out
