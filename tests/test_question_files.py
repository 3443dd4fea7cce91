"""One checker for every question file: a training source (`data.sources` of kind instruction) and a custom
evaluation task (`eval.custom_tasks`) are refused by the dry run for the same mistake with exit code 2, the setting's
key, the file, and the same sentence; nothing is created. Templates take plain `{column}` fields only."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from ablate.cli import main
from ablate.data.templates import TemplateError, fill_template, template_fields


def write_folder(root: Path, rows: list[dict] | None = None, text: str | None = None) -> Path:
    """images/0..3.png and q.jsonl (columns img, q, gold, tag), or `text` as the file."""
    (root / "images").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (16, 16), (60 * i, 0, 0)).save(root / "images" / f"{i}.png")
    if rows is None:
        rows = [{"img": f"images/{i}.png", "q": f"What is {i}?", "gold": ["red"], "tag": "t"} for i in range(4)]
    path = root / "q.jsonl"
    path.write_text(text if text is not None else "".join(json.dumps(r) + "\n" for r in rows))
    return path


def edit(i: int, **values):
    def apply(rows):
        rows[i].update(values)
        return rows
    return apply


def drop(i: int, column: str):
    def apply(rows):
        rows[i].pop(column)
        return rows
    return apply


# mistake -> (settings, how the rows change or the file's text, the setting at fault, words the message holds)
MISTAKES = {
    "attribute access": ({"prompt": "{question.__class__}"}, None, "prompt", ["{question.__class__}", "plain"]),
    "index access": ({"prompt": "{question[0]}"}, None, "prompt", ["{question[0]}", "plain"]),
    "format spec": ({"prompt": "{question:d}"}, None, "prompt", ["{question:d}", "format spec"]),
    "huge width": ({"prompt": "{question:>300000000}"}, None, "prompt", ["{question:>300000000}"]),
    "conversion": ({"prompt": "{question!r}"}, None, "prompt", ["{question!r}", "conversion"]),
    "positional field": ({"prompt": "{} {question}"}, None, "prompt", ["positional"]),
    "unknown field": ({"prompt": "{question} {topic}"}, None, "prompt", ["{topic}", "'gold'"]),
    "field not text in a later record": ({"prompt": "{question} {tag}"}, edit(2, tag=["a", "b"]), "prompt",
                                         ["record 2", "{tag}"]),
    "column missing": ({"question_column": "text"}, None, "question_column", ["'text'", "columns present"]),
    "column missing later": ({}, drop(1, "gold"), "answers_column", ["record 1", "'gold'"]),
    "list of lists": ({}, edit(1, gold=[["red"]]), "answers_column", ["record 1", "a list of lists"]),
    "no answer": ({}, edit(2, gold=[]), "answers_column", ["record 2", "no answer"]),
    "image missing": ({}, edit(0, img="images/none.png"), "image_column", ["none.png", "cannot be opened"]),
    "broken file": ({}, '{"img": \n', "path", ["cannot be read"]),
    "empty file": ({}, "", "path", ["holds no records"]),
    "no file": ({"path": "nowhere.jsonl"}, None, "path", ["no question file", "nowhere.jsonl"]),
}
COLUMNS = {"image_column": "img", "question_column": "q", "answers_column": "gold"}


def make_file(tmp_path: Path, change) -> Path:
    if isinstance(change, str):
        return write_folder(tmp_path / "data", text=change)
    path = write_folder(tmp_path / "data")
    if change is not None:
        rows = change([json.loads(line) for line in path.read_text().splitlines()])
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def grid_text(where: str, settings: dict) -> str:
    if where == "source":
        source = json.dumps({"kind": "instruction", **settings})
        data, evaluation = f"  data: {{mixture: {{instruction: 1}}, sources: [{source}]}}\n", ""
    else:
        task = json.dumps({"name": "mine", **settings})
        data, evaluation = "", f"  eval: {{tasks: [mine], custom_tasks: [{task}]}}\n"
    return f"""name: question-files
base:
  encoder: {{name: "zoo:clip-s", resolution: 96}}
  connector: {{name: avg-pool, tokens: 16}}
  train: {{steps: 5}}
{data}{evaluation}axes:
  connector.tokens: [16]
"""


def dry_run(tmp_path: Path, text: str, capsys) -> tuple[int, str]:
    grid = tmp_path / "grid.yaml"
    grid.write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["--home", str(tmp_path / "home"), "--reports", str(tmp_path / "reports"), "run", str(grid),
                 "--dry-run"])
    out, err = capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a refused grid creates nothing"
    return code, " ".join((out + err).split())


def sentence(text: str, path: Path) -> str:
    """The words after the file's name: what the checker says about the mistake."""
    match = re.search(re.escape(str(path)) + r"'?,? ?(.*)", text)
    assert match, text
    return match.group(1)


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_a_mistake_in_a_question_file_is_refused_alike_for_training_and_evaluation(mistake, tmp_path, capsys):
    settings, change, field, words = MISTAKES[mistake]
    path = make_file(tmp_path, change)
    settings = {"path": str(path), **COLUMNS, **settings}
    if not Path(settings["path"]).is_absolute():
        settings["path"] = str(tmp_path / settings["path"])
    said = {}
    for where, key in (("source", "data.sources"), ("task", "eval.custom_tasks")):
        code, text = dry_run(tmp_path, grid_text(where, settings), capsys)
        assert code == 2, text
        assert f"key '{key}.{field}'" in text, text
        assert settings["path"] in text, text
        for word in words:
            assert word in text, (word, text)
        said[where] = sentence(text, Path(settings["path"]))
    assert said["source"] == said["task"]


@pytest.mark.parametrize("template", ["{prompt:>300000000} {answer}", "{prompt.__class__} {answer}",
                                      "{prompt} {answer!r}"])
def test_a_fewshot_template_with_more_than_plain_fields_is_refused(template, tmp_path, capsys):
    text = grid_text("task", {"path": str(write_folder(tmp_path / "data")), **COLUMNS})
    text = text.replace("custom_tasks:", f"shots: [0, 1], fewshot_template: {json.dumps(template)}, custom_tasks:")
    code, out = dry_run(tmp_path, text, capsys)
    assert code == 2 and "key 'eval.fewshot_template'" in out and "plain" in out, out


def test_template_fields_are_plain_names_and_rendering_inserts_values_only():
    assert template_fields("Q: {question} {tag} {question} {{literal}}") == ["question", "tag"]
    assert fill_template("Q: {question} {{x}} {n}", {"question": "why?", "n": 3}) == "Q: why? {x} 3"
    for bad in ("{question.__class__.__mro__}", "{question[999]}", "{question:d}", "{question!s}", "{0}", "{q"):
        with pytest.raises(TemplateError):
            template_fields(bad)
        with pytest.raises(TemplateError):
            fill_template(bad, {"question": "x", "q": "x"})
    with pytest.raises(KeyError):
        fill_template("{missing}", {})
