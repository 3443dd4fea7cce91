"""Backbone specs: the one parser of `family:name` strings, e.g. `zoo:clip-s`, `hf:openai/clip-vit-base-patch16`,
`timm:eva02_base_patch14_224@random`, `gguf:/models/lm.gguf`.

`Spec.parse` is the only place that splits such a string; registries are keyed by `Spec.family`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ENCODER_FAMILIES = ("zoo", "hf", "timm")
LLM_FAMILIES = ("zoo", "hf", "gguf")
ENCODER_FORMS = ["zoo:<objective>-<size>", "hf:<hub id or local folder>", "timm:<model name>[@random|@weights file]"]
LLM_FORMS = ["zoo:lm-<size>", "hf:<hub id or local folder>", "gguf:<file.gguf>"]


class SpecError(ValueError):
    """A string that is not a spec of one of the allowed families."""


@dataclass(frozen=True)
class Spec:
    """A parsed backbone spec.

    family: `zoo` | `hf` | `timm` | `gguf`;
    name: the zoo model (`clip-s`), hub id or folder (hf), timm model name, or GGUF file (as written);
    weights: timm only, what follows `@`: `random`, a weights file, or "" (pretrained weights from the hub).
    """

    family: str
    name: str
    weights: str = ""

    @staticmethod
    def parse(text: str, families: tuple[str, ...] = ENCODER_FAMILIES + ("gguf",)) -> Spec:
        """`Spec` for `text`; raises `SpecError` unless it is `family:name` with `family` in `families`."""
        return _parse(text, tuple(families))

    @property
    def ref(self) -> str:
        """Everything after `family:` (for timm, `name@weights` when weights are given)."""
        return f"{self.name}@{self.weights}" if self.weights else self.name

    @property
    def path(self) -> Path | None:
        """The local file or folder the spec names, if it names one: a GGUF file, a timm weights file, an hf
        folder (an hf name that exists on disk or is written as a path). None for zoo, hub ids and `@random`."""
        if self.family == "gguf":
            return Path(self.name).expanduser()
        if self.family == "timm":
            return Path(self.weights).expanduser() if self.weights and self.weights != "random" else None
        if self.family == "hf":
            path = Path(self.name).expanduser()
            return path if path.exists() or self.name.startswith(("/", ".", "~")) else None
        return None

    def __str__(self) -> str:
        return f"{self.family}:{self.ref}"


@lru_cache(maxsize=1024)
def _parse(text: str, families: tuple[str, ...]) -> Spec:
    family, sep, ref = str(text).partition(":")
    if not sep or family not in families or not ref:
        raise SpecError(f"{text!r} is not a spec of the form family:name with family one of {', '.join(families)}")
    if family == "timm":
        name, _, weights = ref.partition("@")
        if not name:
            raise SpecError(f"{text!r}: no timm model name before '@'")
        return Spec(family, name, weights)
    return Spec(family, ref)


def zoo_name(text: str) -> str:
    """`clip-s` for `zoo:clip-s` or `clip-s` (zoo functions take either)."""
    return Spec.parse(text, ("zoo",)).name if ":" in text else text
