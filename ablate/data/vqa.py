"""VQA-format records (image, question, answers), read the way evaluation reads them, for instruction training.

The same question file, columns and prompt template serve training (`data.sources` of kind `instruction`) and
evaluation (`eval.custom_tasks`): `load_records`, `as_answers` and `render_prompt` follow `ablate.evaluation.taskfns`
(tests/test_stages.py checks that a record gets the same prompt and answers from both). They live here, below
evaluation in the import layers, so that training can use them.
"""
from __future__ import annotations

import hashlib
import json
import random
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

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


def render_prompt(template: str, record: dict, question_column: str = "question") -> str:
    """`template` filled from the record's columns; `{question}` is always `question_column`'s value."""
    fields = {k: v for k, v in record.items() if isinstance(v, (str, int, float))}
    fields.pop("question", None)
    if question_column in record:
        fields["question"] = record[question_column]
    try:
        return template.format_map(fields)
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
ROWS_CHECKED, IMAGES_OPENED = 20, 5
ANSWER_SHAPES = ["a list of strings", "a list of {answer: ...} mappings (VQAv2)", "a JSON list as text", "one string"]


class QuestionFileError(ValueError):
    """A question file that does not hold what its source names. `field`: the SourceConfig setting at fault;
    `allowed`: what would be accepted, where a list says it."""

    def __init__(self, field: str, message: str, allowed: list | None = None):
        super().__init__(message)
        self.field, self.allowed = field, allowed


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


def check_question_file(source) -> None:
    """Check an instruction source's question file on its first rows: the file and image folder exist, it parses,
    the named columns (and the prompt's `{fields}`) are there, the answers have a usable shape, the first images
    open. Raises `QuestionFileError` naming the setting at fault."""
    path = Path(source.path).expanduser()
    if not path.is_file():
        raise QuestionFileError("path", f"instruction source: no question file {str(path)!r} (relative paths are "
                                        f"read from {Path.cwd()})")
    if not path.name.lower().endswith(QUESTION_SUFFIXES):
        raise QuestionFileError("path", f"instruction source {path}: unsupported question file type",
                                list(QUESTION_SUFFIXES))
    root = Path(source.image_root).expanduser() if source.image_root else path.parent
    if not root.is_dir():
        raise QuestionFileError("image_root", f"instruction source {path}: no image folder {str(root)!r}")
    try:
        records = first_records(path, ROWS_CHECKED)
    except Exception as err:  # noqa: BLE001 - json / pandas / pyarrow raise many types: all are "does not parse"
        raise QuestionFileError("path", f"instruction source {path}: cannot be read ({type(err).__name__}: "
                                        f"{str(err).strip()[:200]})") from None
    if not records or not all(isinstance(r, dict) for r in records):
        raise QuestionFileError("path", f"instruction source {path}: holds no records (objects with columns)")
    for field in ("image_column", "question_column", "answers_column"):
        column = getattr(source, field)
        missing = next((i for i, r in enumerate(records) if column not in r), None)
        if missing is not None:
            present = sorted(records[missing])
            raise QuestionFileError(field, f"instruction source {path}: record {missing} has no column {column!r}",
                                    present)
    for name in _template_fields(source.prompt):
        if name != "question" and name not in records[0]:
            raise QuestionFileError("prompt", f"instruction source {path}: the prompt template {source.prompt!r} "
                                              f"names {{{name}}}, which is no column ({{question}} is the "
                                              f"question_column)", sorted(records[0]))
    for i, record in enumerate(records):
        problem = answers_problem(record[source.answers_column])
        if problem is not None:
            raise QuestionFileError("answers_column", f"instruction source {path}: record {i}: column "
                                                      f"{source.answers_column!r} holds {problem} "
                                                      f"({record[source.answers_column]!r:.80})", ANSWER_SHAPES)
    for i, record in enumerate(records[:IMAGES_OPENED]):
        value = record[source.image_column]
        if isinstance(value, dict) and value.get("bytes"):
            continue
        name = value.get("path") if isinstance(value, dict) else value
        file = Path(str(name)).expanduser()
        file = file if file.is_absolute() else root / file
        try:
            with Image.open(file) as image:
                image.load()
        except Exception as err:  # noqa: BLE001 - missing, truncated, not an image
            raise QuestionFileError("image_column", f"instruction source {path}: record {i}: image {str(file)!r} "
                                                    f"cannot be opened ({type(err).__name__}); relative paths are "
                                                    f"read from {root}") from None


def _template_fields(template: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise QuestionFileError("prompt", f"the prompt template {template!r} is not a format string ({err})") \
            from None
    return [name.split(".")[0].split("[")[0] for _, name, _, _ in parsed if name]
