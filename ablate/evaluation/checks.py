"""A custom task's files checked before anything trains (the dry run and the start of `ablate run` call this
through `ablate.resolve`): a mistake in a grid's `eval.custom_tasks` must not wait for the end of training.

For the question file and the few-shot pool: the file parses and holds records; every column the task names is
there (image, question, answers, id, type, and each `{name}` of the prompt template); every record's answers give
at least one non-empty reference; the first records' images open. Each problem is a `TaskDataError` naming the
task's setting (`question_column`, ...), the file, the column and the columns present.
"""
from __future__ import annotations

import string
from pathlib import Path

from ablate.evaluation.spec import TaskSpec
from ablate.evaluation.taskfns import TaskFns, as_answers, load_records

IMAGES_OPENED = 5   # records whose image is opened per file (the rest are read when evaluated)


class TaskDataError(ValueError):
    """A custom task's file does not hold what its settings name. `field`: the CustomTaskConfig setting at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def template_fields(template: str, field: str = "prompt") -> list[str]:
    """The names a `str.format` template uses (`{question}` -> question; `{a.b}` / `{a[0]}` -> a)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise TaskDataError(field, f"the template {template!r} is not a valid format string ({err}); write a "
                                   "literal brace as {{ or }}") from None
    names = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        root = name.split(".")[0].split("[")[0]
        if not root or root.isdigit():
            raise TaskDataError(field, f"the template {template!r} has a positional field {{{name}}}: name a "
                                       "column, e.g. {question}")
        names.append(root)
    return list(dict.fromkeys(names))


def check_fewshot_template(template: str) -> None:
    """`eval.fewshot_template` may name only {prompt} and {answer}."""
    unknown = [n for n in template_fields(template, "fewshot_template") if n not in ("prompt", "answer")]
    if unknown:
        raise TaskDataError("fewshot_template", f"the few-shot template {template!r} names {unknown}: it is filled "
                                                "with {prompt} (the question's prompt) and {answer} only")


def check_custom_task(custom) -> None:
    """Check one `CustomTaskConfig`'s question file and few-shot pool; raise `TaskDataError` on the first problem."""
    files = [("path", custom.path)] + ([("demo_path", custom.demo_path)] if custom.demo_path else [])
    fields = template_fields(custom.prompt)
    for setting, value in files:
        path = Path(value).expanduser().resolve()
        _check_file(custom, setting, path, fields)


def _check_file(custom, setting: str, path: Path, template: list[str]) -> None:
    where = f"custom task {custom.name}, {path}"
    try:
        records = load_records(str(path))
    except Exception as err:  # noqa: BLE001 - json / pandas / pyarrow raise many types: all are "does not parse"
        raise TaskDataError(setting, f"{where}: cannot be read ({type(err).__name__}: {str(err).strip()[:300]})") \
            from None
    if not records:
        raise TaskDataError(setting, f"{where}: holds no records")
    bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
    if bad is not None:
        raise TaskDataError(setting, f"{where}: record {bad} is a {type(records[bad]).__name__}, not an object with "
                                     "columns")
    present = list(dict.fromkeys(k for r in records[:100] for k in r))
    named = [("image_column", custom.image_column), ("question_column", custom.question_column),
             ("answers_column", custom.answers_column), ("id_column", custom.id_column),
             ("type_column", custom.type_column)]
    for field, column in named:
        if column is None:
            continue
        missing = next((i for i, r in enumerate(records) if column not in r), None)
        if missing is not None:
            which = "has" if missing == 0 else f"record {missing} has"
            raise TaskDataError(field, f"{where}: {which} no column {column!r} ({field}); columns present: "
                                       f"{sorted(r for r in records[missing])}")
    for name in template:
        if name != "question" and name not in records[0]:
            raise TaskDataError("prompt", f"{where}: the prompt template {custom.prompt!r} names {{{name}}}, which "
                                          f"is no column; columns present: {sorted(present)} ({{question}} is "
                                          f"the question_column, {custom.question_column!r})")
    for i, record in enumerate(records):
        value = record[custom.answers_column]
        try:
            answers = as_answers(value)
        except TypeError:
            answers = []
        if not any(a.strip() for a in answers):
            raise TaskDataError("answers_column", f"{where}: record {i} gives no reference answer in column "
                                                  f"{custom.answers_column!r} (value {value!r:.120}); expected a "
                                                  "list of strings, VQAv2-style [{answer: ...}] dicts, a JSON list "
                                                  "or one string")
    fns = TaskFns(TaskSpec(name=custom.name, base=custom.name, data_file=str(path), image_root=(
        str(Path(custom.image_root).expanduser().resolve()) if custom.image_root else None)))
    for i, record in enumerate(records[:IMAGES_OPENED]):
        value = record[custom.image_column]
        try:
            fns.load_image(value)
        except Exception as err:  # noqa: BLE001 - a missing file, a broken image, a value that is no image
            looked = fns.image_path(value)
            at = f" (looked for {looked})" if looked else ""
            raise TaskDataError("image_column", f"{where}: record {i}: the image in column {custom.image_column!r} "
                                                f"cannot be opened{at}: {type(err).__name__}: "
                                                f"{str(err).strip()[:200]}; relative paths are read from "
                                                f"{fns.image_root}") from None
