"""A custom task's files checked before anything trains (the dry run and the start of `ablate run` call this
through `ablate.resolve`): a mistake in a grid's `eval.custom_tasks` must not wait for the end of training.

The question file and the few-shot pool go through the same checker as a training source's question file
(`ablate.data.vqa.check_question_file`): the same `QuestionFileError` and the same sentence for the same mistake.
Here every record is checked (a training source: its first records), and the id and type columns too.
"""
from __future__ import annotations

from pathlib import Path

from ablate.data.vqa import QuestionFile, QuestionFileError, check_question_file, check_template


def check_fewshot_template(template: str) -> None:
    """`eval.fewshot_template` may name only {prompt} and {answer}, as plain fields."""
    unknown = [n for n in check_template(template, "fewshot_template") if n not in ("prompt", "answer")]
    if unknown:
        raise QuestionFileError("fewshot_template", f"the few-shot template {template!r} names {unknown}: it is "
                                                    "filled with {prompt} (the question's prompt) and {answer} only")


def check_custom_task(custom) -> None:
    """Check one `CustomTaskConfig`'s question file and few-shot pool; raise `QuestionFileError` on the first
    problem."""
    files = [("path", custom.path)] + ([("demo_path", custom.demo_path)] if custom.demo_path else [])
    columns = tuple((f, getattr(custom, f)) for f in ("image_column", "question_column", "answers_column",
                                                      "id_column", "type_column"))
    root = Path(custom.image_root).expanduser().resolve() if custom.image_root else None
    for setting, value in files:
        check_question_file(QuestionFile(
            path=Path(value).expanduser().resolve(), what=f"custom task {custom.name}", columns=columns,
            answers_column=custom.answers_column, image_column=custom.image_column,
            question_column=custom.question_column, prompt=custom.prompt, image_root=root, path_field=setting,
            rows=None))
