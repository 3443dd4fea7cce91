"""A custom task's files checked before anything trains (the dry run and the start of `ablate run` call this
through `ablate.resolve`): a mistake in a grid's `eval.custom_tasks` must not wait for the end of training.

The question file and the few-shot pool go through the same checker as a training source's question file
(`ablate.data.vqa.check_question_file`): the same `QuestionFileError` and the same sentence for the same mistake.
Here every record is checked (a training source: its first records), and the id and type columns too.

A conversation task's file (`format: conversation`) is read as a conversation source reads it
(`ablate.data.conversation.read_record`), on its first `conversation.CHECKED` records: the conversations column is
there, some record can be evaluated, the first images open; the VQA settings it does not read must stay unset.
"""
from __future__ import annotations

from pathlib import Path

from ablate.data import conversation
from ablate.data.vqa import (
    IMAGES_OPENED,
    QUESTION_SUFFIXES,
    QuestionFile,
    QuestionFileError,
    check_image_opens,
    check_question_file,
    check_template,
    first_records,
)


def check_fewshot_template(template: str) -> None:
    """`eval.fewshot_template` may name only {prompt} and {answer}, as plain fields."""
    unknown = [n for n in check_template(template, "fewshot_template") if n not in ("prompt", "answer")]
    if unknown:
        raise QuestionFileError("fewshot_template", f"the few-shot template {template!r} names {unknown}: it is "
                                                    "filled with {prompt} (the question's prompt) and {answer} only")


def check_custom_task(custom) -> None:
    """Check one `CustomTaskConfig`'s question file and few-shot pool; raise `QuestionFileError` on the first
    problem."""
    if getattr(custom, "format", "vqa") == "conversation":
        check_conversation_task(custom)
        return
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


# the settings a conversation task does not read, with their defaults
VQA_ONLY = ("question_column", "answers_column", "prompt", "demo_path")


def check_conversation_task(custom) -> None:
    """A conversation task's settings and file, on the file's first `conversation.CHECKED` records."""
    defaults = type(custom).model_fields
    path = Path(custom.path).expanduser().resolve()
    for setting in VQA_ONLY:
        if getattr(custom, setting) != defaults[setting].default:
            why = "few-shot demonstrations: a conversation task is evaluated 0-shot" if setting == "demo_path" else \
                f"its context and reference come from conversations_column {custom.conversations_column!r}"
            raise QuestionFileError(setting, f"custom task {custom.name}, {path}: {setting} is read by format vqa "
                                             f"only ({why}): leave it out of a task of format conversation")
    if not path.is_file():
        raise QuestionFileError("path", f"custom task {custom.name}: no conversation file {str(path)!r} (relative "
                                        f"paths are read from {Path.cwd()})")
    where = f"custom task {custom.name}, {path}"
    if not path.name.lower().endswith(QUESTION_SUFFIXES):
        raise QuestionFileError("path", f"{where}: unsupported file type", list(QUESTION_SUFFIXES))
    root = Path(custom.image_root).expanduser().resolve() if custom.image_root else path.parent
    if not root.is_dir():
        raise QuestionFileError("image_root", f"{where}: no image folder {str(root)!r}")
    try:
        records = first_records(path, conversation.CHECKED)
    except Exception as err:  # noqa: BLE001 - json / pandas / pyarrow raise many types: all are "does not parse"
        raise QuestionFileError("path", f"{where}: cannot be read ({type(err).__name__}: "
                                        f"{str(err).strip()[:300]})") from None
    records = [r for r in records if isinstance(r, dict)]
    if not records:
        raise QuestionFileError("path", f"{where}: holds no records (objects with a {custom.conversations_column!r} "
                                        "list)")
    present = sorted({k for r in records for k in r})
    column = custom.conversations_column
    if not any(column in r for r in records):
        raise QuestionFileError("conversations_column", f"{where}: no column {column!r} (conversations_column) in "
                                                        f"its first {len(records)} records; columns present: {present}",
                                present)
    usable = [(i, read) for i, r in enumerate(records)
              if (read := conversation.read_record(r, column, custom.image_column)) is not None
              and conversation.context_and_reference(read[0])[1]]
    if not usable:
        raise QuestionFileError("conversations_column", f"{where}: none of its first {len(records)} records can be "
                                                        f"evaluated: each needs turns whose roles are "
                                                        f"{'/'.join(conversation.ROLES)}, a last assistant turn with "
                                                        f"text (the reference) and one {conversation.IMAGE_MARKER} "
                                                        f"marker per image of column {custom.image_column!r}",
                                list(conversation.ROLES))
    for setting in ("id_column", "type_column"):
        named = getattr(custom, setting)
        if named is not None and not any(named in r for r in records):
            raise QuestionFileError(setting, f"{where}: no column {named!r} ({setting}) in its first "
                                             f"{len(records)} records; columns present: {present}", present)
    for i, (_, images) in usable[:IMAGES_OPENED]:
        for value in images:
            check_image_opens(value, root, f"{where}: record {i}: an image in column {custom.image_column!r}")


def plan_warnings(cfg) -> list[str]:
    """What an evaluation block asks for that will not run (`cfg`: an `EvalConfig`): a conversation task's k-shot
    entries."""
    from ablate.evaluation.keys import zero_shot_only

    single = sorted(t for t in zero_shot_only(cfg) if t in cfg.tasks)
    skipped = [k for k in cfg.shots if k]
    if not single or not skipped:
        return []
    return [f"eval.shots: {', '.join(map(str, skipped))}-shot skipped for the conversation task"
            f"{'s' if len(single) > 1 else ''} {', '.join(single)} (a conversation is evaluated 0-shot only; "
            "docs/evaluation.md)"]
