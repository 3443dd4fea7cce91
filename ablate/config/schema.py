"""Typed, validated cell configuration: plain data, importing nothing above `ablate.config`.

A *cell* is one point of a grid: a frozen `CellConfig`. Its id (`ablate.resolve.cell_id`) is a hash of its canonical
JSON plus the hashes of the world and zoo recipes its names stand for, so the same settings always get the same id,
whatever order the grid file wrote them in.
"""
from __future__ import annotations

import json
import types
import typing
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ablate.config.spec import ENCODER_FAMILIES, LLM_FAMILIES, Spec

SEED_MAX = 2**32 - 1   # numpy's legacy seed range (np.random.seed), also fine for torch.manual_seed


class Strict(BaseModel):
    """Base for every config block: immutable, unknown keys rejected, no infinities or NaN, and no booleans where
    numbers are expected (pydantic would read `true` as 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value, info: ValidationInfo):
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, (bool, list, dict)) and _bool_where_number(annotation, value):
            raise ValueError("a boolean (true / false) where a number is expected: write the number")
        return value


def _bool_where_number(annotation, value) -> bool:
    """Whether `value` holds a bool where `annotation` wants an int or a float (inside lists and dict values too)."""
    if annotation in (int, float):
        return isinstance(value, bool)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and isinstance(value, list):
        return any(_bool_where_number(args[0], v) for v in value)
    if origin is dict and isinstance(value, dict):
        return any(_bool_where_number(args[1], v) for v in value.values())
    if origin in (typing.Union, types.UnionType) and bool not in args and str not in args:
        return isinstance(value, bool) and any(a in (int, float) for a in args)
    return False


class WorldConfig(Strict):
    """The embedded, procedurally generated image-text world (see `ablate.world`)."""

    seed: int = Field(0, ge=0, le=SEED_MAX)
    image_size: int = Field(192, ge=32, le=1024, description="side of the stored square images, px")
    n_train: int = Field(3000, ge=8, description="images behind the caption / interleaved training data")
    n_pretrain: int = Field(0, ge=0,
                            description="images only the zoo encoders pre-train on (0: they use the train images)")
    n_test: int = Field(300, ge=4, description="held-out images for each question set")
    n_demo: int = Field(100, ge=4, description="images of the few-shot demonstration pool")
    n_text_docs: int = Field(4000, ge=8, description="documents of the text-only corpus")
    n_interleaved_docs: int = Field(1500, ge=4)
    words_per_image: int = Field(1, ge=1, le=3)
    n_words: int = Field(48, ge=3, le=48,
                         description="distinct words drawn (ablate.world.vocab.words(n): the most distinct first)")


class EncoderConfig(Strict):
    """Image encoder: which one, at what resolution, which features."""

    name: str = Field("zoo:clip-s", description="zoo:<objective>-<size> | hf:<hub id or path> | timm:<model>")
    resolution: int = Field(96, ge=16, le=2048)
    feature_layer: Literal["last", "penultimate"] = "last"
    keep_cls: bool = False
    image_handling: Literal["resize", "pad", "slice"] = "resize"
    max_slices: int = Field(4, ge=1, le=16, description="upper bound on slices per image with image_handling=slice")

    @property
    def spec(self) -> Spec:
        """`name` parsed (raises `SpecError` for a malformed name; the grid's validation reports it first)."""
        return Spec.parse(self.name, ENCODER_FAMILIES)


class ConnectorConfig(Strict):
    """Vision-language connector: `(B, n_patches, d_enc) -> (B, tokens, d_llm)`."""

    name: str = "avg-pool"
    tokens: int = Field(64, ge=1, le=4096, description="visual tokens per image")
    options: dict[str, int | float | str | bool] = Field(default_factory=dict, description="connector-specific knobs")


class LLMConfig(Strict):
    name: str = Field("zoo:lm-s", description="zoo:lm-<size> | hf:<hub id or path> | gguf:<file.gguf>")

    @property
    def spec(self) -> Spec:
        """`name` parsed (raises `SpecError` for a malformed name; the grid's validation reports it first)."""
        return Spec.parse(self.name, LLM_FAMILIES)


class SourceConfig(Strict):
    """A real data source on disk or on the hub, read with `datasets`."""

    kind: Literal["caption", "interleaved", "text", "synthetic"]
    path: str = Field(description="jsonl / parquet file, a folder, webdataset shards, or a hub dataset id")
    format: Literal["json", "parquet", "imagefolder", "webdataset", "hub"] = "json"
    image_column: str = "image"
    text_column: str = "text"


class DataConfig(Strict):
    """What the model is trained on: a weight per source kind."""

    mixture: dict[Literal["caption", "interleaved", "text", "synthetic"], float] = Field(
        default_factory=lambda: {"synthetic": 1.0},
        description="weight per source kind; 'synthetic' is the visually rich (VeCap-like) caption set",
    )
    sources: list[SourceConfig] = Field(default_factory=list, description="real sources; empty = embedded world")
    world: WorldConfig = Field(default_factory=WorldConfig)
    max_length: int = Field(240, ge=16, description="tokens per training sequence (visual tokens included)")

    @field_validator("mixture")
    @classmethod
    def _weights(cls, mixture: dict[str, float]) -> dict[str, float]:
        if not mixture:
            raise ValueError("mixture is empty: give a weight to at least one of caption, interleaved, text, synthetic")
        negative = {k: v for k, v in mixture.items() if v < 0}
        if negative:
            raise ValueError(f"mixture weights must be >= 0, got {negative}")
        if sum(mixture.values()) <= 0:
            raise ValueError("mixture weights are all zero: at least one must be > 0")
        return mixture


class TrainConfig(Strict):
    """Short-horizon training. A learning-rate multiplier of 0 freezes a module."""

    steps: int = Field(250, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-3, gt=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    lr_multipliers: dict[Literal["encoder", "connector", "llm"], float] = Field(
        default_factory=lambda: {"encoder": 0.0, "connector": 1.0, "llm": 0.5}
    )
    seed: int = Field(0, ge=0, le=SEED_MAX)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    checkpoint_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    feature_cache: bool = Field(True, description="reuse frozen-encoder features across cells")


class CustomTaskConfig(Strict):
    """A local VQA-format dataset (image files + a question file) evaluated as an lmms-eval task."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="task name (not a built-in lmms-eval name)")
    path: str = Field(description="question file: .jsonl / .json / .parquet / .csv")
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


class EvalConfig(Strict):
    tasks: list[str] = Field(default_factory=lambda: ["world_vqa", "world_textvqa"])
    shots: list[int] = Field(default_factory=lambda: [0])
    limit: int | None = Field(None, ge=1, description="questions per task (None: all)")
    batch_size: int = Field(32, ge=1)
    max_new_tokens: int = Field(4, ge=1)
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for confidence intervals")
    text_perplexity: int = Field(200, ge=0, description="held-out world texts scored for the LLM's perplexity "
                                                        "(text-only ability; 0 skips it)")
    fewshot_seed: int = Field(0, ge=0, le=SEED_MAX,
                              description="seed of the demonstration draw (independent of the model)")
    fewshot_template: str = Field("{prompt} {answer}\n", description="one demonstration, after its image")
    custom_tasks: list[CustomTaskConfig] = Field(default_factory=list, description="local VQA-format datasets")
    n_predictions: int = Field(50, ge=0, description="predictions kept per task and shot count for the log")

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

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def get(self, dotted: str):
        """Value at a dotted key, e.g. `connector.tokens`."""
        value = self
        for part in dotted.split("."):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        return value
