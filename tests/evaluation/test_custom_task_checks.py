"""A custom task's files are checked before anything trains: `ablate run --dry-run` refuses each mistake
with exit code 2, naming the setting's key, the file, the column and the columns present, and creates nothing."""
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from ablate.cli import main
from ablate.data.templates import TemplateError, template_fields
from ablate.data.vqa import QuestionFileError
from ablate.evaluation.checks import check_custom_task
from ablate.evaluation.spec import TaskSpec
from ablate.evaluation.taskfns import TaskFns


@pytest.fixture
def folder(tmp_path) -> Path:
    """A user's VQA folder: images/ and questions.jsonl with its own column names."""
    root = tmp_path / "myvqa"
    (root / "images").mkdir(parents=True)
    rows = []
    for i, colour in enumerate(["red", "green", "blue", "red"]):
        Image.new("RGB", (16, 16), {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}[colour]).save(
            root / "images" / f"{i}.png")
        rows.append({"qid": f"q{i}", "img": f"images/{i}.png", "q": "What colour is it?", "gold": [colour],
                     "kind": "colour", "question": "IGNORE ME"})
    (root / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


TASK = {"name": "mine", "image_column": "img", "question_column": "q", "answers_column": "gold", "id_column": "qid",
        "type_column": "kind"}


def grid_text(task: dict) -> str:
    return f"""name: checks
base:
  encoder: {{name: "zoo:clip-s", resolution: 96}}
  connector: {{name: avg-pool, tokens: 16}}
  train: {{steps: 5}}
  eval:
    tasks: [mine]
    custom_tasks: [{json.dumps(task)}]
axes:
  connector.tokens: [16]
"""


def dry_run(tmp_path: Path, task: dict, capsys) -> tuple[int, str]:
    grid = tmp_path / "grid.yaml"
    grid.write_text(grid_text(task))
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["--home", str(tmp_path / "home"), "--reports", str(tmp_path / "reports"), "run", str(grid),
                 "--dry-run"])
    out, err = capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a refused grid creates nothing"
    return code, out + err


@pytest.mark.slow   # the connector check imports torch: 6-7 s alone on 2 loaded cores
def test_a_correct_custom_task_passes_the_dry_run(tmp_path, folder, capsys):
    code, text = dry_run(tmp_path, {**TASK, "path": str(folder / "questions.jsonl")}, capsys)
    assert code == 0, text
    assert "dry run: nothing trained" in text


# mistake -> (the key the message names, words it must hold besides the file)
MISTAKES = {
    "answers_column": ({"answers_column": "answer"}, "eval.custom_tasks.answers_column", ["'answer'", "'gold'"]),
    "image_column": ({"image_column": "image"}, "eval.custom_tasks.image_column", ["'image'", "'img'"]),
    "question_column": ({"question_column": "text"}, "eval.custom_tasks.question_column", ["'text'", "'q'"]),
    "id_column": ({"id_column": "id"}, "eval.custom_tasks.id_column", ["'id'", "'qid'"]),
    "type_column": ({"type_column": "type"}, "eval.custom_tasks.type_column", ["'type'", "'kind'"]),
    "prompt field": ({"prompt": "{q} about {topic}?"}, "eval.custom_tasks.prompt", ["{topic}", "'gold'"]),
    "prompt syntax": ({"prompt": "{q"}, "eval.custom_tasks.prompt", ["format string"]),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_custom_task_mistake_is_refused_by_the_dry_run_naming_the_column(mistake, tmp_path, folder, capsys):
    change, key, words = MISTAKES[mistake]
    code, text = dry_run(tmp_path, {**TASK, "path": str(folder / "questions.jsonl"), **change}, capsys)
    assert code == 2, text
    assert f"key '{key}'" in text, text
    for word in words:
        assert word in text, (word, text)
    if "column" in mistake:
        assert str(folder / "questions.jsonl") in text and "columns present" in text


def _rewrite(folder: Path, edit) -> None:
    rows = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines()]
    edit(rows)
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("case", ["empty answers", "dict without answer", "image missing", "not an image",
                                  "broken file", "empty file", "column missing in a later row"])
def test_bad_data_is_refused_with_the_record_and_the_file(case, tmp_path, folder, capsys):
    key = {"empty answers": "answers_column", "dict without answer": "answers_column", "image missing": "image_column",
           "not an image": "image_column", "broken file": "path", "empty file": "path",
           "column missing in a later row": "answers_column"}[case]
    if case == "empty answers":
        _rewrite(folder, lambda rows: rows[2].update(gold=[]))
    elif case == "dict without answer":
        _rewrite(folder, lambda rows: rows[1].update(gold=[{"confidence": "yes"}]))
    elif case == "image missing":
        (folder / "images" / "0.png").unlink()
    elif case == "not an image":
        (folder / "images" / "1.png").write_text("not a png")
    elif case == "broken file":
        (folder / "questions.jsonl").write_text('{"qid": "q0", "img": \n')
    elif case == "empty file":
        (folder / "questions.jsonl").write_text("")
    else:
        _rewrite(folder, lambda rows: rows[3].pop("gold"))
    code, text = dry_run(tmp_path, {**TASK, "path": str(folder / "questions.jsonl")}, capsys)
    assert code == 2, text
    assert f"key 'eval.custom_tasks.{key}'" in text, text
    assert str(folder / "questions.jsonl") in text
    if case in ("empty answers", "dict without answer"):
        assert "record 2" in text or "record 1" in text
    if case == "image missing":
        assert str(folder / "images" / "0.png") in text


def test_a_parquet_file_and_a_demo_pool_are_checked_too(tmp_path, folder):
    frame = pd.DataFrame({"img": [str(folder / "images" / "0.png")], "q": ["What colour?"], "gold": [["red"]]})
    frame.to_parquet(tmp_path / "demo.parquet")
    custom = type("C", (), {**TASK, "path": str(folder / "questions.jsonl"), "image_root": None,
                            "demo_path": str(tmp_path / "demo.parquet"), "prompt": "{question}", "id_column": None,
                            "type_column": None})
    check_custom_task(custom)          # the parquet pool has every column the task names
    custom.id_column = "qid"           # ... but not this one
    with pytest.raises(QuestionFileError, match=r"demo\.parquet: has no column 'qid'.*present: \['gold', 'img', 'q'\]"):
        check_custom_task(custom)


def test_question_column_fills_the_prompt_and_a_records_own_question_is_not_used(folder):
    spec = TaskSpec(name="mine", base="mine", data_file=str(folder / "questions.jsonl"), question_column="q",
                    prompt="Q: {question}")
    doc = {"q": "What colour is it?", "question": "IGNORE ME", "img": "images/0.png"}
    assert TaskFns(spec).render_prompt(doc) == "Q: What colour is it?"
    wrong = TaskSpec(name="mine", base="mine", data_file=str(folder / "questions.jsonl"), question_column="text",
                     prompt="Q: {question}")
    with pytest.raises(KeyError, match="question_column 'text'"):
        TaskFns(wrong).render_prompt(doc)


def test_template_fields():
    assert template_fields("{question} or {a} {c} {a} {{literal}}") == ["question", "a", "c"]
    for bad in ("{}", "{a.b}", "{c[0]}"):      # plain {column} fields only
        with pytest.raises(TemplateError):
            template_fields(bad)


@pytest.mark.slow   # the connector check imports torch, as above
def test_a_custom_task_left_out_of_eval_tasks_is_a_warning_of_the_dry_run(tmp_path, folder, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(grid_text({**TASK, "path": str(folder / "questions.jsonl")}).replace("tasks: [mine]",
                                                                                        "tasks: [world_vqa]"))
    code = main(["--home", str(tmp_path / "home"), "--reports", str(tmp_path / "reports"), "run", str(grid),
                 "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "warning: eval.custom_tasks: custom task 'mine' is not in eval.tasks, so it never runs" in out
