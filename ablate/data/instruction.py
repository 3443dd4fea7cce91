"""Instruction (VQA-format) data: question -> answer rows, the loss on the answer tokens (and EOS) only.

A row is `{"text": "<image>" + prompt, "images": [path], "answer": str}`. The collator labels only the answer's
tokens (written after the prompt with one space, as a few-shot demonstration shows it) and the end-of-sequence
token. The prompt is the one evaluation uses for the same question:
- a local question file (`data.sources` of kind `instruction`) uses the source's `prompt` template over the
  record's columns, exactly as `eval.custom_tasks` does (same default template, same columns, relative image paths
  read from `image_root` or the file's folder);
- the embedded world gives, for every TRAIN image, one question of each type the held-out sets ask (colour,
  shape, count, position) and one per word written in it, as the world's cloze prompt (`the colour of the circle
  is`): the prompt the embedded tasks `world_vqa` / `world_textvqa` evaluate with. Test and demonstration images
  never appear (their questions are the held-out sets).
Several answers per question: the most common (first on ties), or a seeded draw per row (`answer: draw`); the
world's facts train on their first answer (the one its captions use: "3", not "three").
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np
from datasets import Dataset, Features, IterableDataset, List, Value

from ablate.config.schema import SourceConfig
from ablate.data import validate
from ablate.data.vqa import answers_problem, as_answers, choose_answer, load_records, render_prompt
from ablate.world.facts import VQA_TYPES, scene_facts, word_facts
from ablate.world.scene import Scene

IMAGE_MARKER = "<image>"
WORLD_STREAM = 20   # the world's question draw for instruction rows (the world's own streams are 10-15)
FEATURES = Features({"text": Value("string"), "images": List(Value("string")), "answer": Value("string")})


def world_rows(world, images: int | None = None) -> list[dict]:
    """Questions over every train image of the world (or its first `images`): one of each VQA type the image has a
    fact of (colour, shape, count, position; drawn with a generator seeded by the world's seed and the image's
    index), and one per word written in it."""
    rows = []
    train = list(islice(train_scenes(world), images))
    for i, record in enumerate(train):
        scene = Scene.from_dict(record["scene"])
        facts = scene_facts(scene)
        rng = np.random.default_rng([world.config.seed, WORLD_STREAM, i])
        chosen = []
        for kind in VQA_TYPES:
            pool = [f for f in facts if f.type == kind]
            if pool:
                chosen.append(pool[int(rng.integers(len(pool)))])
        for fact in chosen + word_facts(scene):
            rows.append({"text": IMAGE_MARKER + fact.prompt, "images": [record["image"]], "answer": fact.answers[0]})
    return rows


def train_scenes(world) -> Iterator[dict]:
    """The world's train scene records in file order, read lazily (the first few cost no more than they are)."""
    from ablate.world.build import _read_resolved  # the lazy reader behind `World.read`

    return (r for r in _read_resolved(world.file("scenes")) if r.get("split") == "train")


def from_world(world) -> Dataset:
    return Dataset.from_list(world_rows(world), features=FEATURES)


def image_root(source: SourceConfig) -> Path:
    """Where relative image paths of a question file are read from: `image_root`, else the file's folder."""
    path = Path(source.path).expanduser()
    return Path(source.image_root).expanduser() if source.image_root else path.parent


def record_rows(source: SourceConfig, records: list[dict], image_path) -> list[dict]:
    """Rows from records; `image_path(value) -> str` makes an image column value a file path."""
    rows = []
    for i, record in enumerate(records):
        value = record.get(source.answers_column)
        if answers_problem(value) is not None:
            continue   # counted and reported by `from_source`
        answers = as_answers(value)
        prompt = render_prompt(source.prompt, record, source.question_column)
        answer = choose_answer(answers, source.answer, f"{source.path}|{i}")
        rows.append({"text": IMAGE_MARKER + prompt, "images": [image_path(record[source.image_column])],
                     "answer": answer})
    return rows


def from_source(source: SourceConfig, image_path) -> Dataset:
    """A local question file as instruction rows (rows whose answers or images are unusable are skipped with one
    warning; a file with no usable row is refused)."""
    path = Path(source.path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"instruction source: question file {path} does not exist")
    records = load_records(str(path))
    columns = sorted({k for r in records[:50] for k in r})
    missing = [c for c in (source.image_column, source.question_column, source.answers_column) if c not in columns]
    if missing:
        raise validate.SourceError(f"{path}: instruction source has no column {', '.join(map(repr, missing))}; "
                                   f"columns present: {columns}. Set image_column / question_column / "
                                   "answers_column in the source config.")
    rows = record_rows(source, records, image_path)
    if len(rows) < len(records):
        warnings.warn(f"{path}: skipped {len(records) - len(rows)} of {len(records)} rows whose "
                      f"{source.answers_column!r} holds no usable answer", stacklevel=2)
    if not rows:
        raise validate.SourceError(f"{path}: no row with a usable answer in column {source.answers_column!r}")
    return Dataset.from_list(rows, features=FEATURES)   # images checked when met (`validate.Skips`)


def with_answer_column(table: Dataset) -> Dataset:
    """Rows of another kind with an empty `answer` (None: the whole text is trained on), so that they mix with
    instruction rows (`datasets.interleave_datasets` needs one schema)."""
    if "answer" in table.column_names:
        return table
    if isinstance(table, IterableDataset):   # a streamed source
        return table.map(lambda row: {"answer": None}).cast(Features({**table.features, "answer": Value("string")}))
    return table.add_column("answer", [None] * len(table), feature=Value("string"))
