"""Errors raised inside lmms-eval reach the user with the task's name and their real cause, never a bare
tenacity `RetryError` (such as `RetryError[<Future ... raised ValueError>]` for a wrong answers column)."""
import json

import pytest
from colour_world import ColourGenerator

from ablate.config.schema import EvalConfig
from ablate.evaluation.runner import EvaluationError, real_cause
from ablate.evaluation.spec import TaskSpec
from ablate.evaluation.taskfns import TaskError, TaskFns


def test_real_cause_unwraps_tenacitys_retry_error():
    from tenacity import retry, stop_after_attempt

    @retry(stop=stop_after_attempt(2))
    def fails():
        raise ValueError("vqa_accuracy needs at least one reference answer")

    with pytest.raises(Exception) as info:
        fails()
    assert type(info.value).__name__ == "RetryError"
    cause = real_cause(info.value)
    assert isinstance(cause, ValueError) and "reference answer" in str(cause)
    plain = KeyError("x")
    assert real_cause(plain) is plain


def test_a_task_hook_names_its_task_question_and_file(tmp_path):
    spec = TaskSpec(name="signs", base="signs", data_file=str(tmp_path / "q.jsonl"), answers_column="gold")
    with pytest.raises(TaskError, match=r"task signs, question q7 \(.*q\.jsonl\): ValueError: .*reference answer"):
        TaskFns(spec).process_results({"id": "q7", "gold": []}, ["red"])


@pytest.mark.slow   # lmms-eval retries process_results 5 times, 2 s apart, before it gives up
def test_a_failure_inside_lmms_eval_is_an_evaluation_error_naming_the_task(world_dir, tmp_path):
    pytest.importorskip("lmms_eval")
    from ablate.evaluation import evaluate

    rows = [{"id": f"q{i}", "image": str(p), "question": "Which colour?", "gold": [] if i == 1 else ["red"]}
            for i, p in enumerate(sorted((world_dir / "images").glob("test_*.png"))[:3])]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = EvalConfig(tasks=["signs"], custom_tasks=[{"name": "signs", "path": str(tmp_path / "q.jsonl"),
                                                     "answers_column": "gold", "id_column": "id"}], bootstrap=0,
                     blind=False)   # the task itself, not its blind copy (which fails the same way)
    with pytest.raises(EvaluationError) as info:
        evaluate(ColourGenerator(), cfg, world_dir, tmp_path / "out")
    text = str(info.value)
    assert "task signs, question q1" in text and "reference answer" in text and "RetryError" not in text
