"""Reference levels logged next to the scores: a custom task's stated chance / baseline, world_vqa's chance."""
import json

import pytest

from ablate.config.schema import CustomTaskConfig, EvalConfig
from ablate.evaluation.baselines import reference_metrics, world_vqa_chance


def test_a_custom_tasks_levels_per_type_and_over_its_questions(tmp_path):
    rows = [{"image": "a.png", "question": "?", "answers": ["yes"], "kind": k} for k in ["yn", "yn", "yn", "col"]]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = EvalConfig(tasks=["mine"], custom_tasks=[{"name": "mine", "path": str(tmp_path / "q.jsonl"),
                                                    "type_column": "kind", "chance": {"yn": 0.5, "col": 0.1},
                                                    "baseline": 0.62}])
    out = reference_metrics(cfg)
    assert out["chance/mine/yn"] == 0.5 and out["chance/mine/col"] == 0.1
    assert out["chance/mine"] == pytest.approx((3 * 0.5 + 0.1) / 4)     # the mean over its questions
    assert out["baseline/mine"] == 0.62
    limited = reference_metrics(cfg.model_copy(update={"limit": 2}))   # the questions evaluated: the first 2
    assert limited["chance/mine"] == pytest.approx(0.5)


def test_a_task_not_evaluated_logs_no_level_and_levels_are_0_to_1(tmp_path):
    cfg = EvalConfig(tasks=["world_vqa"], custom_tasks=[{"name": "mine", "path": "/x.jsonl", "chance": 0.3}])
    assert not any(k.startswith("chance/mine") for k in reference_metrics(cfg))
    with pytest.raises(ValueError, match="between 0 and 1"):
        CustomTaskConfig(name="mine", path="/x.jsonl", baseline={"yn": 1.5})


def test_world_vqa_chance_per_type_and_over_the_test_set(tmp_path):
    from ablate.world import vocab

    chance = world_vqa_chance()
    assert chance == {"colour": 1 / len(vocab.COLOURS), "shape": 1 / 5, "position": 1 / 9, "count": 1 / 4}
    (tmp_path / "questions").mkdir()
    types = ["colour", "shape", "count", "position", "colour"]
    (tmp_path / "questions" / "vqa_test.jsonl").write_text("".join(json.dumps({"type": t}) + "\n" for t in types))
    out = reference_metrics(EvalConfig(tasks=["world_vqa"]), tmp_path)
    assert out["chance/world_vqa/count"] == 0.25
    assert out["chance/world_vqa"] == pytest.approx(sum(chance[t] for t in types) / 5)


def test_a_zoo_lms_build_time_is_logged_as_llm_build_s(workspace):
    """The report's cover reads `llm/build_s` next to `encoder/build_s` (a zoo backbone's pre-training time)."""
    from ablate.cell import zoo_metrics
    from ablate.zoo import model_dir

    folder = model_dir("zoo:lm-s", workspace.cache)
    folder.mkdir(parents=True)
    (folder / "zoo.json").write_text(json.dumps({"metrics": {"build_s": 43.5, "heldout_ppl": 2.1, "note": "x"}}))
    assert zoo_metrics("zoo:lm-s", workspace, "llm") == {"llm/build_s": 43.5, "llm/heldout_ppl": 2.1,
                                                         "llm/shipped": 0.0}   # built here, not installed
    (folder / "shipped.json").write_text("{}")   # the manifest an installed shipped folder keeps
    assert zoo_metrics("zoo:lm-s", workspace, "llm")["llm/shipped"] == 1.0
    assert zoo_metrics("hf:/some/folder", workspace, "llm") == {}


def test_levels_stated_after_a_cell_finished_are_logged_without_evaluating(tmp_path, workspace):
    from ablate.config.schema import CellConfig
    from ablate.evaluation.cells import reference_updates
    from ablate.resolve import make_cell
    from ablate.tracking.store import RunRecord

    (tmp_path / "q.jsonl").write_text(json.dumps({"image": "a.png", "question": "?", "answers": ["yes"]}) + "\n")
    task = {"name": "mine", "path": str(tmp_path / "q.jsonl"), "chance": 0.5, "baseline": 0.7}
    cell = make_cell(CellConfig(eval={"tasks": ["mine"], "custom_tasks": [task]}), {})
    record = RunRecord("r", cell.id, "FINISHED", 0, 1, {"chance/mine": 0.5, "score/mine/0shot": 0.6}, {}, {})
    blind = {"baseline/mine_blind": 0.7, "chance/mine_blind": 0.5, "control/mine_blind": 1.0}   # its blind twin's
    assert reference_updates(cell, workspace, record) == {"baseline/mine": 0.7, **blind}   # what the run lacks, only
    record.metrics.update({"baseline/mine": 0.7, **blind})
    assert reference_updates(cell, workspace, record) == {}


def test_a_blind_evaluation_has_its_tasks_levels_and_a_control_task_is_marked(tmp_path):
    (tmp_path / "q.jsonl").write_text(json.dumps({"image": "a.png", "question": "?", "answers": ["yes"]}) + "\n")
    tasks = [{"name": "mine", "path": str(tmp_path / "q.jsonl"), "chance": 0.5},
             {"name": "swapped", "path": str(tmp_path / "q.jsonl"), "control": True}]
    out = reference_metrics(EvalConfig(tasks=["mine", "swapped"], custom_tasks=tasks))
    assert out["chance/mine_blind"] == 0.5 and out["control/mine_blind"] == 1.0
    assert out["control/swapped"] == 1.0 and "control/mine" not in out
    assert not any("_blind" in k for k in reference_metrics(EvalConfig(tasks=["mine"], custom_tasks=tasks[:1],
                                                                         blind=False)))


def test_the_majority_answer_is_the_most_common_training_answer_of_each_prompt(tmp_path):
    """baseline/<task>: each test question answered with the most common training answer of its prompt."""
    from types import SimpleNamespace

    from ablate.evaluation import baselines

    test = [{"prompt": "the colour is", "answers": ["red"], "type": "colour"},
            {"prompt": "the colour is", "answers": ["blue"], "type": "colour"},
            {"prompt": "the count is", "answers": ["2", "two"], "type": "count"}]
    world = SimpleNamespace(questions=lambda name: test)
    rows = [{"text": "<image>the colour is", "answer": a} for a in ["red", "red", "blue"]] + \
        [{"text": "<image>the count is", "answer": "two"}]
    import ablate.data.instruction as instruction

    original = instruction.world_rows
    instruction.world_rows = lambda w: rows
    try:
        out = baselines.world_majority(world, "world_vqa", None)
    finally:
        instruction.world_rows = original
    assert out["baseline/world_vqa/colour"] == pytest.approx(0.5)   # "red" right once in two
    assert out["baseline/world_vqa/count"] == pytest.approx(1.0)
    assert out["baseline/world_vqa"] == pytest.approx(2 / 3)
