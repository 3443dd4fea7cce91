"""Typed, validated cell configuration: plain data, importing nothing above `ablate.config`.

A *cell* is one point of a grid: a frozen `CellConfig`. Its id (`ablate.resolve.cell_id`) is a hash of its canonical
JSON plus the hashes of the world and zoo recipes its names stand for, so the same settings always get the same id,
whatever order the grid file wrote them in.
"""
from __future__ import annotations

import json
import types
import typing
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from ablate.config.defaults import ZOO, fill_cell, merged_multipliers
from ablate.config.spec import Spec

SEED_MAX = 2**32 - 1   # numpy's legacy seed range (np.random.seed), also fine for torch.manual_seed
# Upper bounds where a bigger value cannot be meant (a typo, a pasted exponent): refused by the dry run at once,
# where they would hang or fail after training (`eval.bootstrap: 10**12` wants 7 TiB). Sizes below them that the
# machine cannot hold are a warning of the dry run (`ablate.resolve.size_warnings`).
MAX_STEPS = 10_000_000          # optimiser steps of a cell (or a stage)
MAX_BATCH = 65_536              # rows of a training or evaluation batch
MAX_WORLD = 1_000_000           # images, or documents, of each part of the embedded world
MAX_BOOTSTRAP = 100_000         # bootstrap resamples of a confidence interval
MAX_TOKENS = 1_048_576          # tokens of a training sequence, or generated for one answer
MAX_PREDICTIONS = 100_000       # predictions logged per task and shot count


class Strict(BaseModel):
    """Base for every config block: immutable, unknown keys rejected, no infinities or NaN, no booleans where
    numbers are expected (pydantic would read `true` as 1), and only true / false where a boolean is (pydantic would
    read 1 or "yes" as true)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value, info: ValidationInfo):
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, (bool, list, dict)) and _bool_where_number(annotation, value):
            raise ValueError("a boolean (true / false) where a number is expected: write the number")
        allowed = _boolean_choices(annotation)
        if allowed and not isinstance(value, bool) and value not in allowed[2:]:   # `1`, `"yes"`: not a boolean
            raise ValueError(f"not a boolean: takes {', '.join(map(json.dumps, allowed[:-1]))} or "
                             f"{json.dumps(allowed[-1])}")
        return value


def _boolean_choices(annotation) -> list | None:
    """`[True, False, *literal values]` for a field that is a boolean (or a boolean or a few words, as `"auto"`),
    None for any other field: such a field takes YAML's true / false only (pydantic would read 1 or "yes" as true)."""
    if annotation is bool:
        return [True, False]
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    args = typing.get_args(annotation)
    if bool not in args:
        return None
    words = []
    for arg in args:
        if typing.get_origin(arg) is Literal:
            words += list(typing.get_args(arg))
        elif arg not in (bool, type(None)):
            return None
    return [True, False, *words, *([None] if type(None) in args else [])]


def _bool_where_number(annotation, value) -> bool:
    """Whether `value` holds a bool where `annotation` wants an int or a float (inside lists and dict values too)."""
    if annotation in (int, float):
        return isinstance(value, bool)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and isinstance(value, list):
        return any(_bool_where_number(args[0], v) for v in value)
    if origin is dict and isinstance(value, dict):
        return any(_bool_where_number(args[1], v) for v in value.values())
    if origin in (typing.Union, types.UnionType):
        if isinstance(value, (list, dict)):   # an optional list or mapping (a stage's mixture, multipliers)
            return any(_bool_where_number(a, value) for a in args)
        if bool not in args and str not in args:
            return isinstance(value, bool) and any(a in (int, float) for a in args)
    return False


class WorldConfig(Strict):
    """The embedded, procedurally generated image-text world (see `ablate.world`)."""

    seed: int = Field(0, ge=0, le=SEED_MAX)
    image_size: int = Field(192, ge=32, le=1024, description="side of the stored square images, px")
    n_train: int = Field(3000, ge=8, le=MAX_WORLD, description="images behind the caption / interleaved training data")
    n_pretrain: int = Field(0, ge=0, le=MAX_WORLD,
                            description="images only the zoo encoders pre-train on (0: they use the train images)")
    n_test: int = Field(300, ge=4, le=MAX_WORLD, description="held-out images for each question set")
    n_demo: int = Field(100, ge=4, le=MAX_WORLD, description="images of the few-shot demonstration pool")
    n_text_docs: int = Field(4000, ge=8, le=MAX_WORLD, description="documents of the text-only corpus")
    n_interleaved_docs: int = Field(1500, ge=4, le=MAX_WORLD)
    words_per_image: int = Field(1, ge=1, le=3)
    n_words: int = Field(48, ge=3, le=48,
                         description="distinct words drawn (ablate.world.vocab.words(n): the most distinct first)")


FeatureLayer = Literal["last", "penultimate"] | Annotated[int, Field(ge=-64, le=64)]


class EncoderConfig(Strict):
    """Image encoder: which one, at what resolution, which features."""

    name: str = Field("zoo:clip-s", description="zoo:<objective>-<size> | hf:<hub id or path> | timm:<model>")
    resolution: int = Field(96, ge=16, le=2048)
    feature_layer: FeatureLayer | tuple[FeatureLayer, ...] = Field(
        "last", description="last | penultimate | a hidden-state index (0: the embeddings, -1: the last block's "
                            "output) | a list of these (their features concatenated)")
    keep_cls: bool = False
    image_handling: Literal["resize", "pad", "slice"] = "resize"
    max_slices: int = Field(4, ge=1, le=16, description="upper bound on slices per image with image_handling=slice")
    resolutions: tuple[Annotated[int, Field(ge=16, le=2048)], ...] | None = Field(
        None, description="a fused encoder's resolution per encoder, in the order of `name` (ablate.config.fusion); "
                          "None: each at `resolution`")

    @field_validator("feature_layer", mode="before")
    @classmethod
    def _distinct_layers(cls, value):
        if isinstance(value, bool) or isinstance(value, (list, tuple)) and any(isinstance(v, bool) for v in value):
            raise ValueError("a boolean is not a layer: write last, penultimate or a hidden-state index")
        if isinstance(value, (list, tuple)) and (not value or len({json.dumps(v) for v in value}) != len(value)):
            raise ValueError("a list of feature layers names one or more different layers")
        return value

    @property
    def spec(self) -> Spec:
        """`name` parsed (raises `SpecError` for a malformed name; the grid's validation checks the family)."""
        return Spec.parse(self.name)


class ConnectorConfig(Strict):
    """Vision-language connector: `(B, n_patches, d_enc) -> (B, tokens, d_llm)`."""

    name: str = "avg-pool"
    tokens: int = Field(64, ge=1, le=4096, description="visual tokens per image")
    options: dict[str, int | float | str | bool] = Field(default_factory=dict, description="connector-specific knobs")


class LoRAConfig(Strict):
    """Low-rank adapters on the LLM (`peft`): the base weights stay frozen, the adapters train at the LLM's rate."""

    r: int = Field(8, ge=1, le=1024, description="rank")
    alpha: float = Field(16.0, gt=0, description="scaling: alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | None = Field(None, description="module names to adapt; None: every linear layer "
                                                                "but the output head (peft's all-linear)")


class LLMConfig(Strict):
    name: str = Field("zoo:lm-s", description="zoo:lm-<size> | hf:<hub id or path> | gguf:<file.gguf>")
    lora: LoRAConfig | None = Field(None, description="None: no adapters (the LLM trains fully or is frozen)")
    chat_template: bool = Field(False, description="wrap instruction prompts in the tokenizer's chat template")

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        out = handler(self)
        if self.lora is None:
            out.pop("lora", None)   # options at their default are left out: cells keep the ids they had
        if not self.chat_template:
            out.pop("chat_template", None)
        return out

    @property
    def spec(self) -> Spec:
        """`name` parsed (raises `SpecError` for a malformed name; the grid's validation checks the family)."""
        return Spec.parse(self.name)


Kind = Literal["caption", "interleaved", "text", "synthetic", "instruction", "conversation"]
KIND_NAMES: tuple[str, ...] = typing.get_args(Kind)
VQA_PROMPT = "{question}\nAnswer the question using a single word or phrase."   # eval.custom_tasks' default too
INSTRUCTION_ONLY = ("image_root", "question_column", "answers_column", "prompt", "answer")


class SourceConfig(Strict):
    """A real data source on disk or on the hub, read with `datasets`; `instruction` sources are question files
    read like `eval.custom_tasks` (docs/data.md, "Instruction data"); `conversation` sources are LLaVA / ShareGPT
    `conversations` records (docs/data.md, "Conversation data")."""

    kind: Kind
    path: str = Field(description="jsonl / parquet file, a folder, webdataset shards, or a hub dataset id; "
                                  "instruction: a .jsonl / .json / .parquet / .csv question file")
    format: Literal["json", "parquet", "imagefolder", "webdataset", "hub"] = Field(
        "json", description="ignored by instruction sources (their file's suffix says)")
    image_column: str = "image"
    text_column: str = "text"
    streaming: bool | None = Field(
        None, description="read the source as training needs it (datasets streaming: nothing converted into the "
                          "cache first, rows checked as they are met); None: on for webdataset shards, off otherwise")
    # instruction sources only (left out of the dump, hence of cell ids, for the other kinds; conversation sources
    # keep image_root)
    image_root: str | None = Field(None, description="folder for relative image paths; None: the question file's "
                                                     "(instruction and conversation sources)")
    question_column: str = "question"
    answers_column: str = Field("answers", description="a list of answers, VQAv2-style dicts, or one string")
    prompt: str = Field(VQA_PROMPT, description="str.format template over the record's columns (as in evaluation)")
    answer: Literal["most-common", "draw"] = Field(
        "most-common", description="which of several answers a row trains on: the most common (first on ties), "
                                   "or one drawn per row with a fixed seed (the same in every cell)")

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        out = handler(self)
        if self.kind != "instruction":
            for key in INSTRUCTION_ONLY:
                if not (key == "image_root" and self.kind == "conversation"):
                    out.pop(key, None)
        return out


def _check_mixture(mixture: dict[str, float]) -> dict[str, float]:
    if not mixture:
        raise ValueError(f"mixture is empty: give a weight to at least one of {', '.join(KIND_NAMES)}")
    negative = {k: v for k, v in mixture.items() if v < 0}
    if negative:
        raise ValueError(f"mixture weights must be >= 0, got {negative}")
    if sum(mixture.values()) <= 0:
        raise ValueError("mixture weights are all zero: at least one must be > 0")
    return mixture


class DataConfig(Strict):
    """What the model is trained on: a weight per source kind."""

    mixture: dict[Kind, float] = Field(
        default_factory=lambda: {"synthetic": 1.0},
        description="weight per source kind; 'synthetic' is the visually rich (VeCap-like) caption set, "
                    "'instruction' question -> answer pairs (loss on the answer only)",
    )
    sources: list[SourceConfig] = Field(default_factory=list, description="real sources; empty = embedded world")
    world: WorldConfig = Field(default_factory=WorldConfig)
    max_length: int = Field(240, ge=16, le=MAX_TOKENS,
                            description="tokens per training sequence (visual tokens included)")
    packing: bool = Field(False, description="pack rows first-fit into max_length sequences, each attending only to "
                                             "itself (position ids restart per row); the rows of a step are the same")
    nodes: int = Field(1, ge=1, le=4096,
                       description="parts the data stream is split into by shards (datasets' split_dataset_by_node); "
                                   "each batch takes batch_size / nodes rows from each part, and with N processes "
                                   "(N dividing nodes) each reads only its parts; the batches do not depend on N")
    workers: int = Field(0, ge=0, le=64,
                         description="loader processes that read, tokenise and collate the batches and decode and "
                                     "resize their images (torchdata's StatefulDataLoader; pinned and prefetched); "
                                     "0: the training process does it; the batches do not depend on it")

    @field_validator("mixture")
    @classmethod
    def _weights(cls, mixture: dict[str, float]) -> dict[str, float]:
        return _check_mixture(mixture)


class StageData(Strict):
    """A stage's data: what it leaves out is the cell's (`data.mixture`, `data.sources`)."""

    mixture: dict[Kind, float] | None = None
    sources: list[SourceConfig] | None = Field(None, description="None: the cell's data.sources")

    @field_validator("mixture")
    @classmethod
    def _weights(cls, mixture: dict[str, float] | None) -> dict[str, float] | None:
        return None if mixture is None else _check_mixture(mixture)


Module = Literal["encoder", "connector", "llm"]


class StageConfig(Strict):
    """One training stage (docs/training.md). What it leaves out is the cell's: `train.lr`, `train.warmup_ratio`,
    `train.lr_multipliers` (a partial mapping is laid over the cell's), `data`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="names its metrics: train/<name>/loss")
    steps: int = Field(ge=1, le=MAX_STEPS, description="optimiser steps of this stage")
    lr: float | None = Field(None, gt=0)
    warmup_ratio: float | None = Field(None, ge=0, lt=1, description="of this stage's steps")
    lr_multipliers: dict[Module, float] | None = Field(None, description="0 freezes a module in this stage")
    data: StageData | None = None

    @field_validator("lr_multipliers")
    @classmethod
    def _multipliers(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and any(v < 0 for v in value.values()):
            raise ValueError(f"learning-rate multipliers must be >= 0 (0 freezes), got {value}")
        return value


class Budget(Strict):
    """A training budget held equal across cells instead of a step count (`train.budget`): exactly one of
    `samples` (steps = samples / batch size, known before training), `tokens` (text and visual tokens, padding left
    out) or `flops` (training FLOPs); tokens and FLOPs are measured on the cell's first batch
    (`ablate.train.compute`) when it starts, and the steps they buy are logged as `train/steps`."""

    samples: int | None = Field(None, ge=1)
    tokens: int | None = Field(None, ge=1)
    flops: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [name for name in ("samples", "tokens", "flops") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("train.budget takes exactly one of samples, tokens, flops"
                             + (f" (given: {', '.join(given)})" if given else ""))
        return self

    @property
    def quantity(self) -> str:
        return next(name for name in ("samples", "tokens", "flops") if getattr(self, name) is not None)

    @property
    def amount(self) -> float:
        return getattr(self, self.quantity)


class TrainConfig(Strict):
    """Short-horizon training. A learning-rate multiplier of 0 freezes a module. With `stages`, `steps` is their
    sum (written or left out) and each stage has its own optimiser and schedule (docs/training.md)."""

    steps: int = Field(250, ge=1, le=MAX_STEPS)
    batch_size: int = Field(16, ge=1, le=MAX_BATCH)
    lr: float = Field(2e-3, gt=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    lr_multipliers: dict[Module, float] = Field(
        default_factory=lambda: {"encoder": 0.0, "connector": 1.0, "llm": 0.5},
        description="a partial mapping keeps the defaults of the modules it leaves out (ablate.config.defaults)"
    )
    seed: int = Field(0, ge=0, le=SEED_MAX)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    checkpoint_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    feature_cache: bool = Field(True, description="reuse frozen-encoder features across cells")
    stages: list[StageConfig] | None = Field(None, description="ordered training stages; None: one stage, "
                                                               "the settings above")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimiser step: `batch_size` (the global batch) "
                                                 "is split into this many, the loss normalised over the whole step")
    # the speed path (docs/performance.md): `auto` is on with CUDA and off on the CPU; each effective value is logged
    # as a run parameter `speed/<name>`
    compile: Literal["auto"] | bool = Field("auto", description="torch.compile of the LLM's transformer blocks")
    frozen_bf16: Literal["auto"] | bool = Field("auto", description="modules frozen in every stage held in bf16")
    prefetch: Literal["auto"] | bool = Field("auto", description="batches (and frozen-encoder features) made and "
                                                                 "moved to the device on a background thread")
    fused_adamw: Literal["auto"] | bool = Field("auto", description="AdamW's fused CUDA kernel")
    activation_checkpointing: bool = Field(False, description="recompute the LLM's activations in the backward "
                                                              "pass (when the LLM trains): memory for time")
    keep_resume_state: bool = Field(False, description="a finished cell keeps its resume state (`last/`, "
                                                       "`last.previous/`) besides `final/`")
    budget: Budget | None = Field(None, description="what cells hold equal instead of `steps`: samples, tokens "
                                                    "or FLOPs (`Budget`)")
    parallel: Literal["ddp", "fsdp"] = Field("ddp", description="with several processes: ddp replicates the model "
                                             "on each; fsdp shards the LLM's blocks and the trained parts "
                                             "(FSDP2), for LLMs too big for one GPU (docs/runners.md)")

    @field_validator("lr_multipliers", mode="before")
    @classmethod
    def _partial_multipliers(cls, value):
        """A partial mapping keeps the defaults of the modules it leaves out (a cell fills them from its LLM's
        kind first: `ablate.config.defaults`)."""
        return merged_multipliers(value, ZOO["lr_multipliers"])

    @field_validator("stages", mode="before")
    @classmethod
    def _stage_keys(cls, stages):
        """Unknown keys named with the keys a stage takes (pydantic alone cannot say them through the list)."""
        if not isinstance(stages, list):
            return stages
        if not stages:
            raise ValueError("stages is empty: give at least one stage, or leave stages out (one stage)")
        blocks = {"": StageConfig, "data.": StageData}
        for i, stage in enumerate(stages):
            for prefix, model in blocks.items():
                block = stage.get(prefix[:-1]) if prefix and isinstance(stage, dict) else stage
                if not isinstance(block, dict):
                    continue
                unknown = [k for k in block if k not in model.model_fields]
                if unknown:
                    raise ValueError(f"stage {i + 1}: unknown key {prefix}{unknown[0]!r}; a stage takes "
                                     + ", ".join(prefix + k for k in model.model_fields))
        return stages

    @model_validator(mode="before")
    @classmethod
    def _steps_from_the_budget(cls, data):
        """With `budget`, steps are not written: a budget in samples sets them here; one in tokens or FLOPs when
        the cell starts (`ablate.train.compute.steps_for`)."""
        budget = data.get("budget") if isinstance(data, dict) else None
        if not isinstance(budget, dict):
            return data
        if data.get("stages"):
            raise ValueError("train.budget with train.stages: give each stage its steps instead")
        if "steps" in data:
            raise ValueError("give train.steps or train.budget, not both: a budget sets the steps")
        samples, batch = budget.get("samples"), data.get("batch_size", cls.model_fields["batch_size"].default)
        if isinstance(samples, int) and not isinstance(samples, bool) and samples >= 1 and isinstance(batch, int) \
                and not isinstance(batch, bool) and batch >= 1:
            return {**data, "steps": -(-samples // batch)}
        return data

    @model_validator(mode="before")
    @classmethod
    def _steps_are_the_stages(cls, data):
        stages = data.get("stages") if isinstance(data, dict) else None
        if not isinstance(stages, list) or not stages or not all(isinstance(s, dict) for s in stages):
            return data   # None, [] or a malformed list: the field's own validation says what is wrong
        counts = [s.get("steps") for s in stages]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in counts):
            return data   # the stage's own validation says what is wrong
        total = sum(counts)
        if "steps" in data and data["steps"] != total:
            raise ValueError(f"train.steps is {data['steps']} but the stages add up to {total} steps "
                             f"({' + '.join(map(str, counts))}): leave train.steps out or make them agree")
        return {**data, "steps": total}

    @field_validator("stages")
    @classmethod
    def _stage_names(cls, stages: list[StageConfig] | None) -> list[StageConfig] | None:
        names = [s.name for s in stages or []]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two stages are named {twice[0]!r}: stage names must be unique")
        return stages

    @model_validator(mode="after")
    def _micro_batches_have_rows(self):
        if self.grad_accum > self.batch_size:
            raise ValueError(f"train.grad_accum {self.grad_accum} is more than train.batch_size {self.batch_size}: "
                             "each micro-batch needs at least one row")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        out = handler(self)
        if self.stages is None:
            out.pop("stages", None)   # a cell without stages keeps the id it had before stages existed
        if self.budget is not None:
            out.pop("steps", None)    # the budget says what was held equal; the steps it bought are derived
        return out


class CustomTaskConfig(Strict):
    """A local dataset (image files + a question file, or a LLaVA-format conversation file) evaluated as an lmms-eval
    task."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="task name (not a built-in lmms-eval name)")
    path: str = Field(description="question file: .jsonl / .json / .parquet / .csv")
    format: Literal["vqa", "conversation"] = Field(
        "vqa", description="vqa: one question and its answers per record (image, question, answers columns); "
                           "conversation: LLaVA / ShareGPT records, the turns before the last assistant turn the "
                           "context, that turn the reference (docs/evaluation.md)")
    conversations_column: str = Field("conversations", description="format conversation: the column of turns")
    demo_path: str | None = Field(None, description="few-shot pool file; None: `path` itself (query image excluded)")
    image_root: str | None = Field(None, description="folder for relative image paths; None: the question file's")
    image_column: str = "image"
    question_column: str = "question"
    answers_column: str = Field("answers", description="a list of answers, VQAv2-style dicts, or one string")
    id_column: str | None = None
    type_column: str | None = Field(None, description="column for the per-type breakdown")
    prompt: str = Field(
        "{question}\nAnswer the question using a single word or phrase.",
        description="str.format template over the record's columns",
    )
    metric: Literal["vqa", "exact", "anls", "cider"] = "vqa"
    chance: float | dict[str, float] | None = Field(
        None, description="score of a random guess, 0..1, or one per question type ({type: level}); logged as "
                          "chance/<task> (and chance/<task>/<type>) and drawn next to the scores")
    baseline: float | dict[str, float] | None = Field(
        None, description="the task's own reference score (e.g. a question-only or majority-answer model), 0..1, "
                          "or one per question type; logged as baseline/<task>")
    control: bool = Field(False, description="a control task (e.g. its images shuffled or blanked by hand): "
                                             "reported beside the others, kept out of Avg and the best-cell choice")

    @field_validator("chance", "baseline")
    @classmethod
    def _level(cls, value: float | dict[str, float] | None) -> float | dict[str, float] | None:
        levels = value.values() if isinstance(value, dict) else [] if value is None else [value]
        if any(not 0 <= v <= 1 for v in levels):
            raise ValueError(f"a level is a score between 0 and 1 (e.g. 0.25 for one answer in four), got {value}")
        if isinstance(value, dict) and not value:
            raise ValueError("an empty mapping: give a number, or a level per question type")
        return value


class EvalConfig(Strict):
    tasks: list[str] = Field(default_factory=lambda: ["world_vqa", "world_textvqa"])
    shots: list[int] = Field(default_factory=lambda: [0])
    limit: int | None = Field(None, ge=1, description="questions per task (None: all)")
    batch_size: int = Field(32, ge=1, le=MAX_BATCH)
    max_new_tokens: int = Field(4, ge=1, le=MAX_TOKENS)
    bootstrap: int = Field(1000, ge=0, le=MAX_BOOTSTRAP, description="bootstrap resamples for confidence intervals")
    text_perplexity: int = Field(200, ge=0, le=MAX_WORLD,
                                 description="held-out world texts scored for the LLM's perplexity "
                                             "(text-only ability; 0 skips it)")
    fewshot_seed: int = Field(0, ge=0, le=SEED_MAX,
                              description="seed of the demonstration draw (independent of the model)")
    fewshot_template: str = Field("{prompt} {answer}\n", description="one demonstration, after its image")
    custom_tasks: list[CustomTaskConfig] = Field(default_factory=list, description="local VQA-format datasets")
    n_predictions: int = Field(50, ge=0, le=MAX_PREDICTIONS,
                               description="predictions kept per task and shot count for the log")
    blind: bool = Field(True, description="evaluate each embedded and custom task blind as well: the same questions "
                                          "with the images shuffled among them (seeded), logged as <task>_blind; "
                                          "the report's 'What the image adds' (docs/evaluation.md)")

    every: int = Field(0, ge=0, le=MAX_STEPS, description="evaluate the tasks 0-shot every this many training steps "
                                                          "(on every_limit questions; 0: only at the end)")
    every_limit: int = Field(50, ge=1, le=MAX_WORLD, description="questions per task of each mid-training "
                                                                 "evaluation (eval.every)")

    @field_validator("shots")
    @classmethod
    def _shots(cls, shots: list[int]) -> list[int]:
        if not shots or any(k < 0 for k in shots):
            raise ValueError("shots must be a non-empty list of counts >= 0, e.g. [0, 4, 8]")
        return sorted(set(shots))


class CellConfig(Strict):
    """One point of a grid."""

    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    connector: ConnectorConfig = Field(default_factory=ConnectorConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="before")
    @classmethod
    def _backbone_defaults(cls, data):
        """Training values left out come from the LLM's kind (zoo or pretrained), a partial `lr_multipliers` is
        merged over them (`ablate.config.defaults`)."""
        return fill_cell(data)

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def get(self, dotted: str):
        """Value at a dotted key, e.g. `connector.tokens`."""
        value = self
        for part in dotted.split("."):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        return value
