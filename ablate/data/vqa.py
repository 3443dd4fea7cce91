"""VQA-format records (image, question, answers), read the way evaluation reads them, for instruction training.

The same question file, columns and prompt template serve training (`data.sources` of kind `instruction`) and
evaluation (`eval.custom_tasks`): `load_records`, `as_answers` and `render_prompt` follow `ablate.evaluation.taskfns`
(tests/test_stages.py checks that a record gets the same prompt and answers from both). They live here, below
evaluation in the import layers, so that training can use them.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ablate.data.templates import TemplateError, fill_template, template_fields

ANSWER_CHOICES = ("most-common", "draw")
DRAW_SEED = 0   # the seed of the per-row answer draw: the same draw in every cell


def as_answers(value) -> list[str]:
    """Reference answers from a column value: a list of strings, VQAv2-style dicts (`{"answer": ...}`), a JSON list,
    one string or one number. A missing value (None, NaN in a csv) gives none."""
    if value is None or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, (bool, int, float)):
        return [str(value)]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return as_answers(json.loads(text))
            except json.JSONDecodeError:
                pass
        return [value]
    if isinstance(value, dict):
        return [str(value.get("answer", ""))]
    return [a for item in value for a in as_answers(item)]


def answers_problem(value) -> str | None:
    """Why a column value is not usable as answers (None: it is): the shapes `as_answers` reads, each answer a
    non-empty string."""
    if isinstance(value, dict) and "answer" not in value:
        return f"a mapping without an 'answer' key ({sorted(value)[:5]})"
    if isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, (list, tuple)):
                return "a list of lists"
            if isinstance(item, dict) and "answer" not in item:
                return f"a list holding a mapping without an 'answer' key ({sorted(item)[:5]})"
            if not isinstance(item, (str, int, float, dict)):
                return f"a list holding a {type(item).__name__}"
    elif not isinstance(value, (str, int, float, dict)) and value is not None:
        return f"a {type(value).__name__}"
    try:
        answers = as_answers(value)
    except TypeError as err:
        return f"unreadable ({err})"
    if not answers:
        return "no answer (empty or missing)"
    if not all(a.strip() for a in answers):
        return "an empty answer"
    return None


def prompt_fields(record: dict, question_column: str = "question", extra: dict | None = None) -> dict:
    """What a prompt template may name: the record's text and number columns, `{question}` always being
    `question_column`'s value (a record's own `question` column never stands in for another one), and `extra`
    (template name -> column)."""
    fields = {k: v for k, v in record.items() if isinstance(v, (str, int, float))}
    fields.pop("question", None)
    if question_column in record:
        fields["question"] = record[question_column]
    for name, column in (extra or {}).items():
        fields[name] = record.get(column, "")
    return fields


def render_prompt(template: str, record: dict, question_column: str = "question") -> str:
    """`template` filled from the record's columns; `{question}` is always `question_column`'s value."""
    fields = prompt_fields(record, question_column)
    try:
        return fill_template(template, fields)
    except KeyError as err:
        raise KeyError(f"prompt template {template!r} names {err}, columns are {sorted(record)}") from None


def most_common(answers: Sequence[str]) -> str:
    """The most frequent answer, the first one on ties (what a few-shot demonstration shows, too)."""
    if not answers:
        raise ValueError("no answer to choose from")
    counts = Counter(answers)
    best = max(counts.values())
    return next(a for a in answers if counts[a] == best)


def choose_answer(answers: Sequence[str], how: str, key: str) -> str:
    """The answer a row trains on: `most-common`, or `draw` (one of the answers, by a seeded draw that depends
    only on `key`, so the same row trains on the same answer in every cell and every run)."""
    if how == "most-common":
        return most_common(answers)
    if how == "draw":
        digest = hashlib.sha256(f"{DRAW_SEED}|{key}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big")).choice(list(answers))
    raise ValueError(f"unknown answer choice {how!r}; choices: {', '.join(ANSWER_CHOICES)}")


def load_records(path: str) -> list[dict]:
    """All records of a question file (.jsonl / .json / .parquet / .csv / .tsv), in file order."""
    path = str(path)
    lower = path.lower()
    if lower.endswith(".jsonl"):
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if lower.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict):  # {"questions": [...]} or {"data": [...]}
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise ValueError(f"{path}: expected a list of records or one list inside an object")
            data = lists[0]
        return list(data)
    import pandas as pd  # lazy: pandas only for parquet / csv files; this module stays light for validation

    if lower.endswith(".parquet"):
        frame = pd.read_parquet(path)
    elif lower.endswith((".csv", ".tsv")):
        frame = pd.read_csv(path, sep="\t" if lower.endswith(".tsv") else ",")
    else:
        raise ValueError(f"unsupported question file {path!r}: use .jsonl, .json, .parquet or .csv")
    return [_plain(r) for r in frame.to_dict(orient="records")]


def _plain(record: dict) -> dict:
    """numpy arrays (parquet list columns) as lists."""
    return {k: (v.tolist() if hasattr(v, "tolist") and not isinstance(v, (str, bytes)) else v)
            for k, v in record.items()}


QUESTION_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".tsv")
ROWS_CHECKED, IMAGES_OPENED, PROMPTS_RENDERED = 20, 5, 20
ANSWER_SHAPES = ["a list of strings", "a list of {answer: ...} mappings (VQAv2)", "a JSON list as text", "one string"]


class QuestionFileError(ValueError):
    """A question file (a training source's or an evaluation task's) that does not hold what its settings name.
    `field`: the setting at fault (`path`, `answers_column`, `prompt`, ...); `allowed`: what would be accepted,
    where a list says it."""

    def __init__(self, field: str, message: str, allowed: list | None = None):
        super().__init__(message)
        self.field, self.allowed = field, allowed


@dataclass(frozen=True)
class QuestionFile:
    """A question file and the settings that read it, as an instruction source (`data.sources`) and a custom
    evaluation task (`eval.custom_tasks`) both give them. `what` names the owner in messages; `columns` are
    (setting, column) pairs, the column None where the setting is unset; `rows`: the records checked (None: all)."""

    path: Path
    what: str
    columns: tuple[tuple[str, str | None], ...]
    answers_column: str
    image_column: str
    question_column: str
    prompt: str
    image_root: Path | None = None
    path_field: str = "path"
    rows: int | None = ROWS_CHECKED


def first_records(path: Path, n: int) -> list:
    """The first `n` records of a question file (a .jsonl is read no further than them)."""
    if path.suffix.lower() == ".jsonl":
        out = []
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    out.append(json.loads(line))
                    if len(out) == n:
                        break
        return out
    return load_records(str(path))[:n]


def image_file(value, root: Path) -> Path | None:
    """The file an image column's value names (relative paths under `root`); None for bytes or a decoded image."""
    if isinstance(value, (str, os.PathLike)):
        path = Path(value).expanduser()
        return path if path.is_absolute() else root / path
    if isinstance(value, dict) and value.get("path") and not value.get("bytes"):
        return image_file(value["path"], root)
    return None


def open_image(value, root: Path) -> Image.Image:
    """An image column's value as an RGB image: a path (relative to `root`), `{bytes: ...}` or `{path: ...}`, or
    an image already decoded."""
    path = image_file(value, root)
    if path is not None:
        with Image.open(path) as image:
            return image.convert("RGB")
    if isinstance(value, dict) and value.get("bytes"):
        return Image.open(io.BytesIO(value["bytes"])).convert("RGB")
    if hasattr(value, "convert"):
        return value.convert("RGB")
    raise TypeError(f"cannot read an image from {type(value).__name__}")


def check_template(template: str, field: str = "prompt") -> list[str]:
    """The plain `{column}` names of a template; `QuestionFileError(field)` for anything else."""
    try:
        return template_fields(template)
    except TemplateError as err:
        raise QuestionFileError(field, str(err)) from None


def check_question_file(qf: QuestionFile) -> None:
    """One check for every question file, before anything trains: the file and the image folder exist, the file
    parses and holds records, every named column is there, the prompt is plain `{column}` fields and renders on
    the first records, every record checked gives usable answers, the first images open. Raises
    `QuestionFileError` naming the setting at fault, the file and what was found."""
    where = f"{qf.what}, {qf.path}"
    try:
        fields = template_fields(qf.prompt)
    except TemplateError as err:
        raise QuestionFileError("prompt", f"{where}: {err}") from None
    if not qf.path.is_file():
        raise QuestionFileError(qf.path_field, f"{qf.what}: no question file {str(qf.path)!r} (relative paths are "
                                               f"read from {Path.cwd()})")
    if not qf.path.name.lower().endswith(QUESTION_SUFFIXES):
        raise QuestionFileError(qf.path_field, f"{where}: unsupported question file type", list(QUESTION_SUFFIXES))
    root = qf.image_root or qf.path.parent
    if not root.is_dir():
        raise QuestionFileError("image_root", f"{where}: no image folder {str(root)!r}")
    records = _read_records(qf, where)
    _check_columns(qf, where, records, fields)
    for i, record in enumerate(records):
        problem = answers_problem(record[qf.answers_column])
        if problem is not None:
            raise QuestionFileError("answers_column", f"{where}: record {i}: column {qf.answers_column!r} holds "
                                                      f"{problem} ({record[qf.answers_column]!r:.80})", ANSWER_SHAPES)
    for i, record in enumerate(records[:IMAGES_OPENED]):
        check_image_opens(record[qf.image_column], root, f"{where}: record {i}: the image in column "
                                                         f"{qf.image_column!r}")


def check_image_opens(value, root: Path, what: str) -> None:
    """`QuestionFileError("image_column")` saying `what` cannot be opened, and why, when `open_image` fails."""
    try:
        open_image(value, root)
    except Exception as err:  # noqa: BLE001 - a missing file, a broken image, a value that is no image
        looked = image_file(value, root)
        at = f" (looked for {looked})" if looked else ""
        raise QuestionFileError("image_column", f"{what} cannot be opened{at}: {type(err).__name__}: "
                                                f"{str(err).strip()[:200]}; relative paths are read from "
                                                f"{root}") from None


def _read_records(qf: QuestionFile, where: str) -> list[dict]:
    try:
        records = load_records(str(qf.path)) if qf.rows is None else first_records(qf.path, qf.rows)
    except Exception as err:  # noqa: BLE001 - json / pandas / pyarrow raise many types: all are "does not parse"
        raise QuestionFileError(qf.path_field, f"{where}: cannot be read ({type(err).__name__}: "
                                               f"{str(err).strip()[:300]})") from None
    if not records:
        raise QuestionFileError(qf.path_field, f"{where}: holds no records")
    bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
    if bad is not None:
        raise QuestionFileError(qf.path_field, f"{where}: record {bad} is a {type(records[bad]).__name__}, not an "
                                               "object with columns")
    return records


def _check_columns(qf: QuestionFile, where: str, records: list[dict], fields: list[str]) -> None:
    """Every named column in every record checked; the prompt's fields in the first record, and the prompt
    rendered on the first records."""
    for field, column in qf.columns:
        if column is None:
            continue
        missing = next((i for i, r in enumerate(records) if column not in r), None)
        if missing is not None:
            which = "has" if missing == 0 else f"record {missing} has"
            raise QuestionFileError(field, f"{where}: {which} no column {column!r} ({field}); columns present: "
                                           f"{sorted(records[missing])}")
    for name in fields:
        if name != "question" and name not in records[0]:
            present = list(dict.fromkeys(k for r in records[:100] for k in r))
            raise QuestionFileError("prompt", f"{where}: the prompt template {qf.prompt!r} names {{{name}}}, which "
                                              f"is no column; columns present: {sorted(present)} ({{question}} is "
                                              f"the question_column, {qf.question_column!r})")
    for i, record in enumerate(records[:PROMPTS_RENDERED]):
        try:
            fill_template(qf.prompt, prompt_fields(record, qf.question_column))
        except KeyError as err:
            raise QuestionFileError("prompt", f"{where}: record {i}: the prompt template {qf.prompt!r} names "
                                              f"{{{err.args[0]}}}, which is no text or number column there "
                                              f"(value {record.get(err.args[0])!r:.80})") from None


def source_question_file(source) -> QuestionFile:
    """An instruction source's question file (`data.sources` of kind `instruction`), its first records checked."""
    return QuestionFile(
        path=Path(source.path).expanduser(), what="instruction source",
        columns=tuple((f, getattr(source, f)) for f in ("image_column", "question_column", "answers_column")),
        answers_column=source.answers_column, image_column=source.image_column,
        question_column=source.question_column, prompt=source.prompt,
        image_root=Path(source.image_root).expanduser() if source.image_root else None)


def check_instruction_source(source) -> None:
    """`check_question_file` for an instruction source."""
    check_question_file(source_question_file(source))
