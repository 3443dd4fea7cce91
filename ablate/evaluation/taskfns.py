"""The functions a generated lmms-eval task calls (`doc_to_visual`, `doc_to_text`, `process_results`, ...).

One `TaskFns` per `TaskSpec`. The context text carries one `<image>` marker per image returned by
`doc_to_visual`, in the same order, so that the model adapter can rebuild the interleaved sequence:
`<image>{demo 1 prompt} {answer}\n ... <image>{query prompt}`.

A conversation task (`spec.format == "conversation"`) reads each LLaVA / ShareGPT record as a conversation source
reads it (`ablate.data.conversation`): the turns before the last assistant turn are the context, passed to the
adapter as their JSON (`spec.conversation_text`), the record's images are the visuals, and the last assistant turn
is the one reference. Records that cannot be evaluated are left out of the task (`process_docs`).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
from collections.abc import Hashable
from pathlib import Path

import numpy as np
from PIL import Image

from ablate.data.conversation import context_and_reference, read_record
from ablate.data.templates import fill_template
from ablate.data.vqa import (  # one reader for training and evaluation
    as_answers,
    load_records,
    most_common,
    prompt_fields,
)
from ablate.evaluation import metrics
from ablate.evaluation.fewshot import DemoPool
from ablate.evaluation.spec import IMAGE_MARKER, TaskSpec, conversation_text


class TaskError(RuntimeError):
    """A task's document function failed: the message names the task, the question and the cause."""


class TaskFns:
    """Document functions of one task, parametrised by its `TaskSpec`."""

    def __init__(self, spec: TaskSpec):
        self.spec = spec
        self.image_root = Path(spec.image_root) if spec.image_root else Path(spec.data_file).parent
        self._pool: DemoPool | None = None
        self._partner: dict | None = None   # image key -> the image shown instead (a blind evaluation)
        self._open = functools.lru_cache(maxsize=1024)(_open_image)  # demo images recur across queries

    @classmethod
    def from_json(cls, text: str) -> TaskFns:
        return cls(TaskSpec.from_json(text))

    # -- images ---------------------------------------------------------------------------------------
    def image_path(self, value) -> str | None:
        if isinstance(value, (str, os.PathLike)):
            path = Path(value)
            return str(path if path.is_absolute() else (self.image_root / path).resolve())
        if isinstance(value, dict) and value.get("path") and not value.get("bytes"):
            return self.image_path(value["path"])
        return None

    def image_key(self, value) -> Hashable:
        """What makes two images the same: the resolved path, or a hash of the encoded bytes or pixels."""
        path = self.image_path(value)
        if path is not None:
            return path
        pixels = self.load_image(value)  # encoded bytes and decoded images must agree: hash the pixels
        return hashlib.sha1(pixels.tobytes() + repr(pixels.size).encode()).hexdigest()

    def load_image(self, value):
        path = self.image_path(value)
        if path is not None:
            return self._open(path)
        if isinstance(value, dict) and value.get("bytes"):
            return Image.open(io.BytesIO(value["bytes"])).convert("RGB")
        if hasattr(value, "convert"):
            return value.convert("RGB")
        raise TypeError(f"cannot read an image from {type(value).__name__}")

    # -- records --------------------------------------------------------------------------------------
    def answers(self, doc: dict) -> list[str]:
        if self.conversation:
            return [self.dialogue(doc)[1]]
        return as_answers(doc.get(self.spec.answers_column))

    def prompt_text(self, doc: dict) -> str:
        """What the record asks, as text: the prompt, or a conversation's context turns one a line."""
        if self.conversation:
            return "\n".join(t["content"] for t in self.dialogue(doc)[0])
        return self.render_prompt(doc)

    # -- conversations --------------------------------------------------------------------------------
    @property
    def conversation(self) -> bool:
        return self.spec.format == "conversation"

    def dialogue(self, doc: dict) -> tuple[list[dict], str, list] | None:
        """A conversation record's context turns, its reference (the last assistant turn) and the image values its
        context shows, read as training reads the record; None when it cannot be evaluated (no usable turns,
        markers that do not match the images, an empty reference)."""
        read = read_record(doc, self.spec.conversations_column, self.spec.image_column)
        if read is None:
            return None
        turns, images = read
        context, reference = context_and_reference(turns)
        if not reference:
            return None
        return context, reference, images[:sum(t["content"].count(IMAGE_MARKER) for t in context)]

    def process_docs(self, dataset):
        """The records a conversation task evaluates: those `dialogue` can read (every record of a VQA task)."""
        if not self.conversation:
            return dataset
        return dataset.filter(lambda doc: self.dialogue(doc) is not None)

    def query_key(self, doc: dict) -> str:
        if self.spec.id_column and doc.get(self.spec.id_column) is not None:
            return str(doc[self.spec.id_column])
        return str(self.image_key(doc[self.spec.image_column]))

    def render_prompt(self, doc: dict) -> str:
        """The prompt template filled from the record's columns; `{question}` is always the `question_column`."""
        fields = prompt_fields(doc, self.spec.question_column, self.spec.extra_columns)
        try:
            return fill_template(self.spec.prompt, fields)   # plain {column} fields only (`ablate.data.templates`)
        except KeyError as err:
            what = (f" (the question_column {self.spec.question_column!r})" if err.args == ("question",) else "")
            raise KeyError(
                f"task {self.spec.name}: prompt template {self.spec.prompt!r} names {err}{what}, "
                f"columns are {sorted(doc)}"
            ) from None

    # -- few-shot -------------------------------------------------------------------------------------
    @property
    def pool(self) -> DemoPool:
        if self._pool is None:
            records = load_records(self.spec.demo_file or self.spec.data_file)
            keys = [self.image_key(r[self.spec.image_column]) for r in records]
            self._pool = DemoPool(records, keys)
        return self._pool

    def demos(self, doc: dict) -> list[dict]:
        """The k demonstration records of this query (deterministic, never the query's image)."""
        if self.spec.shots == 0:
            return []
        query_image = self.image_key(doc[self.spec.image_column])
        idx = self.pool.draw(self.spec.shots, self.spec.seed, self.query_key(doc), query_image)
        return [self.pool.records[i] for i in idx]

    def demo_text(self, demo: dict) -> str:
        prompt = self.render_prompt(demo)
        text = fill_template(self.spec.fewshot_template, {"prompt": prompt,
                                                          "answer": most_common(self.answers(demo))})
        return text if prompt else text.lstrip()  # captions have no prompt: no leading space

    # -- lmms-eval hooks ------------------------------------------------------------------------------
    # Each names its task and question when it fails: lmms-eval retries `process_results` and then raises a
    # tenacity `RetryError` that hides the cause (`ablate.evaluation.runner` unwraps it down to this `TaskError`).
    def doc_to_visual(self, doc: dict) -> list:
        with self._named(doc):
            return self._doc_to_visual(doc)

    def doc_to_text(self, doc: dict, lmms_eval_specific_kwargs=None) -> str:
        with self._named(doc):
            return self._doc_to_text(doc)

    def process_results(self, doc: dict, results: list) -> dict:
        with self._named(doc):
            return self._process_results(doc, results)

    @contextlib.contextmanager
    def _named(self, doc: dict):
        try:
            yield
        except TaskError:
            raise
        except Exception as err:
            qid = doc.get(self.spec.id_column) if self.spec.id_column and isinstance(doc, dict) else None
            which = f", question {qid}" if qid is not None else ""
            raise TaskError(f"task {self.spec.name}{which} ({self.spec.data_file}): {type(err).__name__}: "
                            f"{str(err).strip()[:500]}") from err

    def _doc_to_visual(self, doc: dict) -> list:
        if self.conversation:
            return [self.load_image(v) for v in self.conversation_images(doc)]
        demos = self.demos(doc)
        column = self.spec.image_column
        return [self.load_image(d[column]) for d in demos] + [self.load_image(self.query_image(doc))]

    # -- blind evaluation -----------------------------------------------------------------------------
    def query_image(self, doc: dict):
        """The image the query is shown with: its own, or in a blind evaluation (`spec.blind_seed`) the image of
        another question. The distinct images of the question file are put in one seeded cycle and each shows the
        next one's: never its own, every image used once, every question of an image gets the same other image
        (the demonstrations keep theirs). The model sees the same kind of input as in the task itself, only
        unrelated to the question."""
        value = doc.get(self.spec.image_column)
        if self.spec.blind_seed is None or value is None:
            return value
        if self._partner is None:
            self._partner = blind_partners(load_records(self.spec.data_file), self.spec.image_column,
                                           self.image_key, self.spec.blind_seed)
        return self._partner.get(self.image_key(value), value)

    def conversation_images(self, doc: dict) -> list:
        """The images a conversation's context is shown with: its own or, in a blind evaluation, those of another
        record with as many images (a seeded cycle over the distinct image lists of each count, as `query_image`
        does for single images; a count no other record has keeps its own images, a text-only record has none)."""
        images = self.dialogue(doc)[2]
        if self.spec.blind_seed is None or not images:
            return images
        if self._partner is None:
            by_count: dict[int, list[dict]] = {}
            for record in load_records(self.spec.data_file):
                read = self.dialogue(record)
                if read is not None and read[2]:
                    by_count.setdefault(len(read[2]), []).append({"images": read[2]})
            self._partner = {}
            for records in by_count.values():
                self._partner.update(blind_partners(records, "images", self._images_key, self.spec.blind_seed))
        return self._partner.get(self._images_key(images), images)

    def _images_key(self, images: list) -> tuple:
        return tuple(self.image_key(v) for v in images)

    def _doc_to_text(self, doc: dict) -> str:
        if self.conversation:
            return conversation_text(self.dialogue(doc)[0])
        parts = [IMAGE_MARKER + self.demo_text(d) for d in self.demos(doc)]
        parts.append(IMAGE_MARKER + self.render_prompt(doc))
        return "".join(parts)

    def doc_to_target(self, doc: dict) -> str:
        if self.conversation:
            return self.dialogue(doc)[1]
        answers = self.answers(doc)
        return answers[0] if answers else ""

    def _process_results(self, doc: dict, results: list) -> dict:
        prediction = results[0] if results else ""
        if isinstance(prediction, list):  # multi-round answers: score the last round
            prediction = prediction[-1] if prediction else ""
        prediction = str(prediction)
        answers = self.answers(doc)
        if self.spec.metric == "cider":
            return {"cider": {"prediction": prediction, "references": answers}}
        out = {self.spec.metric: metrics.SCORERS[self.spec.metric](prediction, answers)}
        for name in self.spec.extra_metrics:
            out[name] = metrics.SCORERS[name](prediction, answers)
        return out

    @staticmethod
    def aggregate_cider(items: list[dict]) -> float:
        score, _ = metrics.cider([i["prediction"] for i in items], [i["references"] for i in items])
        return score


def blind_partners(records: list[dict], column: str, key, seed: int) -> dict:
    """Image key -> the image value shown in its place: the distinct images (in file order) in one cycle drawn with
    `seed`, each mapped to the next (a derangement when there are two or more)."""
    values: dict = {}
    for r in records:
        values.setdefault(key(r[column]), r[column])
    keys = list(values)
    order = np.random.default_rng(seed).permutation(len(keys))
    return {keys[i]: values[keys[order[(j + 1) % len(order)]]] for j, i in enumerate(order)}


def _open_image(path: str):
    with Image.open(path) as img:
        return img.convert("RGB")


