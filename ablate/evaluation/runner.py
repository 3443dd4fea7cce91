"""`evaluate(model, cfg, world, out_dir) -> EvalResult`: one lmms-eval run over every (task, shots).

lmms-eval does the request building, the model calls (through `AblateLMM`) and the per-question scoring
(the tasks' `process_results`); its own bootstrap is off (`bootstrap_iters=0`) and the error bars are ours:
a percentile bootstrap over per-question scores with a fixed seed (`metrics.bootstrap_ci`).
"""
from __future__ import annotations

import contextlib
import io
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ablate.evaluation import metrics
from ablate.evaluation.benchmarks import BenchmarkUnavailable, check_available, is_builtin
from ablate.evaluation.taskfns import TaskError, TaskFns, as_answers
from ablate.evaluation.taskgen import write_task
from ablate.evaluation.tasks import PlannedTask, plan

BOOTSTRAP_SEED = 0


class _WithoutProgressBars(io.TextIOBase):
    """stderr without tqdm's redraws. lmms-eval's "Postprocessing" bar passes `disable=False` (past `TQDM_DISABLE`):
    noise in a log file, and it cuts into the grid's own progress display (`ablate.progress`). tqdm redraws with a
    carriage return; everything else (warnings, errors) goes through unchanged."""

    def __init__(self, stream):
        self.stream, self._in_bar = stream, False

    def write(self, text: str) -> int:
        if "\r" in text:
            self._in_bar = True
        elif not (self._in_bar and text == "\n"):   # the newline a bar ends with
            self._in_bar = False
            self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


@dataclass(frozen=True)
class Score:
    """A mean per-question score with its bootstrap 95% interval."""

    score: float
    ci_low: float
    ci_high: float
    n: int


@dataclass
class TaskResult:
    task: str
    shots: int
    metric: str
    overall: Score
    by_type: dict[str, Score] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)  # e.g. {"anls": 0.71}
    empty: float = float("nan")  # share of the questions answered with nothing (empty after stripping)

    @property
    def key(self) -> str:
        return f"{self.task}/{self.shots}shot"


@dataclass
class EvalResult:
    tasks: list[TaskResult]
    predictions: list[dict]  # image, question, prediction, references, correct (the question's score), ...
    task_dir: str
    seconds: float
    questions: int
    model_seconds: float
    per_question: list[dict] = field(default_factory=list)   # every question's answer and score (`per_question`)

    @property
    def samples(self) -> list[dict]:
        """The predictions sample (alias of `predictions`), for a table artifact."""
        return self.predictions

    @property
    def metrics(self) -> dict[str, float]:
        """Flat metrics: `score/<task>/<k>shot`, `ci_low/...`, `ci_high/...`, `n/...`, per type
        `score/<task>/<k>shot/<type>` (and its interval), extra metrics `<name>/<task>/<k>shot`, the share of
        empty predictions `empty/<task>/<k>shot`."""
        out: dict[str, float] = {}
        for t in self.tasks:
            for suffix, s in [("", t.overall), *((f"/{ty}", s) for ty, s in sorted(t.by_type.items()))]:
                out[f"score/{t.key}{suffix}"] = s.score
                out[f"ci_low/{t.key}{suffix}"] = s.ci_low
                out[f"ci_high/{t.key}{suffix}"] = s.ci_high
                out[f"n/{t.key}{suffix}"] = float(s.n)
            for name, value in t.extra.items():
                out[f"{name}/{t.key}"] = value
            if t.empty == t.empty:
                out[f"empty/{t.key}"] = t.empty
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def summarise(scores, n_resamples: int, seed: int = BOOTSTRAP_SEED) -> Score:
    values = np.asarray(scores, dtype=float)
    low, high = metrics.bootstrap_ci(values, n_resamples, seed)
    return Score(float(values.mean()) if values.size else float("nan"), low, high, int(values.size))


def _prediction(sample: dict) -> str:
    resp = sample.get("filtered_resps") or sample.get("resps") or [""]
    while isinstance(resp, (list, tuple)):
        resp = resp[-1] if resp else ""
    return str(resp)


def empty_share(samples: list[dict]) -> float:
    """The share of samples whose prediction is empty after stripping (an answer the model did not give, or one
    its tokenizer decodes to nothing, as an unknown token)."""
    return float(np.mean([not _prediction(s).strip() for s in samples])) if samples else float("nan")


def _per_question(task: PlannedTask, samples: list[dict]) -> list[float]:
    if task.metric == "cider":
        items = [s["cider"] for s in samples]
        _, per_item = metrics.cider([i["prediction"] for i in items], [i["references"] for i in items])
        return [float(v) for v in per_item]
    missing = [s.get("doc_id") for s in samples if task.metric not in s]
    if missing:
        raise KeyError(f"{task.lmms_name}: samples {missing[:5]} carry no {task.metric!r} value")
    return [float(s[task.metric]) for s in samples]


def _sample_predictions(task: PlannedTask, samples: list[dict], scores: list[float], n: int) -> list[dict]:
    if n <= 0 or not samples:
        return []
    picks = sorted(set(np.linspace(0, len(samples) - 1, num=min(n, len(samples))).round().astype(int).tolist()))
    return _rows(task, samples, scores, picks)


QUESTION_COLUMNS = ("task", "shots", "id", "type", "prediction", "correct")


def per_question(task: PlannedTask, samples: list[dict], scores: list[float]) -> list[dict]:
    """Every question's answer and score (`QUESTION_COLUMNS`), for the report's paired intervals and answer
    shares (logged as the run's `questions.json`)."""
    rows = _rows(task, samples, scores, range(len(samples)))
    return [{k: r[k] for k in QUESTION_COLUMNS} for r in rows]


def _rows(task: PlannedTask, samples: list[dict], scores: list[float], picks) -> list[dict]:
    spec = task.spec
    fns = TaskFns(spec) if spec is not None else None
    rows = []
    for i in picks:
        s, doc = samples[i], samples[i].get("doc", {})
        if spec is not None and fns.conversation:   # the context's turns one a line, the last assistant turn
            image = ", ".join(fns.image_path(v) or "" for v in fns.conversation_images(doc))
            question, refs = fns.prompt_text(doc), fns.answers(doc)
            qid = doc.get(spec.id_column) if spec.id_column else s.get("doc_id")
            qtype = doc.get(spec.type_column) if spec.type_column else None
        elif spec is not None:
            image = fns.image_path(fns.query_image(doc)) or ""   # the image shown (a blind task's: another)
            question = str(doc.get(spec.question_column, ""))
            refs = as_answers(doc.get(spec.answers_column))
            qid = doc.get(spec.id_column) if spec.id_column else s.get("doc_id")
            qtype = doc.get(spec.type_column) if spec.type_column else None
        else:
            image = str(doc.get("image_id", doc.get("image_path", "")))
            question = str(doc.get("question", ""))
            refs = [a["answer"] if isinstance(a, dict) else str(a) for a in doc.get("answers", [])]
            qid = doc.get("question_id", s.get("doc_id"))
            qtype = doc.get(task.type_column) if task.type_column else None
        rows.append(
            {
                "task": task.base,
                "shots": task.shots,
                "id": str(qid),
                "image": image,
                "question": question,
                "prediction": _prediction(s),
                "references": list(refs),
                "correct": float(scores[i]),
                "type": "" if qtype is None else str(qtype),
            }
        )
    return rows


def _types(task: PlannedTask, samples: list[dict]) -> list[str | None]:
    column = task.type_column
    if not column:
        return [None] * len(samples)
    return [None if s.get("doc", {}).get(column) is None else str(s["doc"][column]) for s in samples]


class EvaluationError(RuntimeError):
    """An evaluation failed; the message names the task(s) and the real cause (never a bare `RetryError`)."""


def real_cause(err: BaseException) -> BaseException:
    """The error behind lmms-eval's retries: tenacity's `RetryError` holds the last attempt's exception."""
    seen = 0
    while type(err).__name__ == "RetryError" and hasattr(err, "last_attempt") and seen < 10:
        inner = err.last_attempt.exception() if err.last_attempt.failed else None
        if inner is None:
            break
        err, seen = inner, seen + 1
    return err


def write_tasks(cfg, world, task_root, only=None) -> list[PlannedTask]:
    """Plan every (task, shots) of `cfg` (or those in `only`, a set of (task, shots)) and write the task folders of
    the local ones under `task_root` (for `lmms-eval eval --include_path <task_root>`); check that the hub
    benchmarks can be had."""
    planned = [t for t in plan(cfg, world) if only is None or (t.base, t.shots) in only]
    if not planned:
        raise ValueError("nothing to evaluate: EvalConfig.tasks is empty")
    task_root = Path(task_root)
    for task in planned:
        if task.spec is not None:
            if is_builtin(task.spec.name):
                raise ValueError(f"task name {task.spec.name!r} is a built-in lmms-eval task: choose another")
            write_task(task.spec, task_root)
        else:
            check_available(task.benchmark)
    task_root.mkdir(parents=True, exist_ok=True)
    return planned


def evaluate(model, cfg, world, out_dir, only=None) -> EvalResult:
    """Evaluate `model` (a `Generator`) on every task x shot count of `cfg` (an `EvalConfig`), or on those in
    `only` (a set of (task, shots)).

    Task folders are written to `out_dir/lmms_tasks/` (kept: they say exactly what ran). A failure inside
    lmms-eval is raised as `EvaluationError` naming the task and the real cause.
    """
    from ablate.evaluation.adapter import AblateLMM  # lazy, as lmms_eval below: a GPU machine may lack lmms-eval

    t0 = time.perf_counter()
    task_root = Path(out_dir) / "lmms_tasks"
    planned = write_tasks(cfg, world, task_root, only)

    from lmms_eval import evaluator  # lazy: as the adapter above
    from lmms_eval.tasks import TaskManager  # lazy: as the adapter above

    manager = TaskManager(
        verbosity="WARNING",
        include_path=str(task_root),
        include_defaults=any(t.benchmark is not None for t in planned),
    )
    adapter = AblateLMM(model, batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens)
    try:
        with contextlib.redirect_stderr(_WithoutProgressBars(sys.stderr)):
            raw = evaluator.simple_evaluate(
                model=adapter,
                tasks=[t.lmms_name for t in planned],
                task_manager=manager,
                bootstrap_iters=0,
                limit=cfg.limit,
                log_samples=True,
                verbosity="WARNING",
                process_docs_parallel=1,
                random_seed=None,  # leave the caller's RNG state alone (evaluation may run mid-training)
                numpy_random_seed=None,
                torch_random_seed=None,
            )
    except Exception as err:
        cause = real_cause(err)
        if any(t.benchmark is not None for t in planned) and "connect" in repr(cause).lower():
            raise BenchmarkUnavailable(f"a hub benchmark could not be downloaded: {cause}") from cause
        if isinstance(cause, TaskError):
            raise EvaluationError(str(cause)) from cause
        names = ", ".join(t.lmms_name for t in planned)
        raise EvaluationError(f"evaluating {names} failed: {type(cause).__name__}: "
                              f"{str(cause).strip()[:500]}") from cause
    if raw is None or "samples" not in raw:
        raise RuntimeError("lmms-eval returned no samples (see its log above)")

    results, predictions, answered = [], [], []
    for task in planned:
        samples = sorted(raw["samples"].get(task.lmms_name, []), key=lambda s: s["doc_id"])
        if not samples:
            raise RuntimeError(f"lmms-eval produced no samples for {task.lmms_name}")
        scores = _per_question(task, samples)
        types = _types(task, samples)
        by_type = {}
        for ty in sorted({t for t in types if t is not None}):
            by_type[ty] = summarise([v for v, t in zip(scores, types) if t == ty], cfg.bootstrap)
        extra = {}
        if task.spec is not None:
            for name in task.spec.extra_metrics:
                extra[name] = float(np.mean([s[name] for s in samples]))
        results.append(TaskResult(task.base, task.shots, task.metric, summarise(scores, cfg.bootstrap), by_type, extra,
                                  empty_share(samples)))
        predictions.extend(_sample_predictions(task, samples, scores, cfg.n_predictions))
        answered.extend(per_question(task, samples, scores))
    return EvalResult(
        tasks=results,
        predictions=predictions,
        task_dir=str(task_root),
        seconds=time.perf_counter() - t0,
        questions=adapter.generated,
        model_seconds=adapter.model_seconds,
        per_question=answered,
    )
