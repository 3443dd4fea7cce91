"""`TaskSpec`: everything a generated lmms-eval task needs to know, as plain JSON.

A spec is written into the generated task's `utils.py` (see `taskgen.py`), so the task folder alone says
exactly what was evaluated: data file, prompt template, few-shot pool, k, seed, metric.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

Metric = Literal["vqa", "exact", "anls", "cider"]

IMAGE_MARKER = "<image>"
REAL_BENCHMARK_PROMPT = "{question}\nAnswer the question using a single word or phrase."


@dataclass(frozen=True)
class TaskSpec:
    """One lmms-eval task over a local question file, optionally k-shot."""

    name: str  # lmms-eval task name, unique (never a built-in name)
    base: str  # the task without its shot suffix, e.g. world_vqa
    data_file: str  # absolute path: jsonl / json / parquet / csv
    shots: int = 0
    demo_file: str | None = None  # few-shot pool; None: the data file itself (query images excluded)
    seed: int = 0  # demonstration draw seed (independent of the model)
    prompt: str = REAL_BENCHMARK_PROMPT  # str.format template over the record's columns
    fewshot_template: str = "{prompt} {answer}\n"  # one demonstration after its image
    metric: Metric = "vqa"
    extra_metrics: tuple[str, ...] = ()
    image_column: str = "image"
    question_column: str = "question"
    answers_column: str = "answers"
    id_column: str | None = "id"
    type_column: str | None = "type"
    image_root: str | None = None  # relative image paths resolve here (default: the data file's folder)
    max_new_tokens: int = 4
    until: tuple[str, ...] = ("\n",)
    extra_columns: dict[str, str] = field(default_factory=dict)  # template name -> column
    blind_seed: int | None = None  # a blind evaluation: each query shows another question's image (seeded)
    format: str = "vqa"  # "conversation": LLaVA / ShareGPT records (`ablate.evaluation.taskfns`)
    conversations_column: str = "conversations"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TaskSpec:
        data = json.loads(text)
        data["extra_metrics"] = tuple(data.get("extra_metrics", ()))
        data["until"] = tuple(data.get("until", ()))
        return cls(**data)

    @property
    def data_format(self) -> str:
        return data_format(self.data_file)


CONVERSATION = "<ablate:conversation>"   # a context text that is a conversation's turns, as JSON after this tag


def conversation_text(turns: list[dict]) -> str:
    """A conversation's context turns as the text lmms-eval passes from `doc_to_text` to the model adapter, which
    reads the turns back (`conversation_turns`) and hands the generator a `protocol.Conversation`."""
    return CONVERSATION + json.dumps(turns, ensure_ascii=False)


def conversation_turns(text: str) -> list[dict] | None:
    """The turns of a context text written by `conversation_text`; None for any other text."""
    return json.loads(text[len(CONVERSATION):]) if text.startswith(CONVERSATION) else None


def data_format(path: str) -> str:
    """The `datasets` builder for a question file, from its suffix."""
    lower = str(path).lower()
    if lower.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
        return "json"
    if lower.endswith(".parquet"):
        return "parquet"
    if lower.endswith((".csv", ".tsv")):
        return "csv"
    raise ValueError(f"unsupported question file {path!r}: use .jsonl, .json, .parquet or .csv")
