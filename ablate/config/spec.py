"""Backbone specs: the one parser of `family:name[@weights]` strings, e.g. `zoo:clip-s`,
`hf:openai/clip-vit-base-patch16`, `timm:eva02_base_patch14_224@random`, `gguf:/models/lm.gguf`.

`Spec.parse` is the only place that splits such a string. It knows the grammar, not the families: which families
exist, what each accepts and how each is checked and built is the family objects' (`ablate.models.families`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_FAMILY = re.compile(r"[a-z][a-z0-9_]*")


class SpecError(ValueError):
    """A string that is not a spec of one of the allowed families."""


@dataclass(frozen=True)
class Spec:
    """A parsed backbone spec.

    family: the registry key (`zoo`, `hf`, `timm`, `gguf`, ...);
    name: what follows `family:` up to an `@` (the zoo model, hub id or folder, timm model name, GGUF file);
    weights: what follows `@` (timm: `random` or a weights file), or "". `ref` is the text after `family:` as
    written, so a family whose names may hold an `@` (a file path) reads `ref`.
    """

    family: str
    name: str
    weights: str = ""

    @staticmethod
    def parse(text: str, families: tuple[str, ...] | None = None) -> Spec:
        """`Spec` for `text`; raises `SpecError` unless it is `family:name` with `family` in `families` (None:
        any family name)."""
        return _parse(text, None if families is None else tuple(families))

    @property
    def ref(self) -> str:
        """Everything after `family:`, as written."""
        return f"{self.name}@{self.weights}" if self.weights else self.name

    @property
    def path(self) -> Path | None:
        """The local file or folder the spec names, if it names one: the weights file after `@` (not `@random`), or
        the name when it exists on disk or is written as a path (`/`, `.`, `~`). None for zoo models, hub ids and
        `@random`."""
        if self.weights:
            return Path(self.weights).expanduser() if self.weights != "random" else None
        path = Path(self.name).expanduser()
        return path if path.exists() or self.name.startswith(("/", ".", "~")) else None

    def __str__(self) -> str:
        return f"{self.family}:{self.ref}"


@lru_cache(maxsize=1024)
def _parse(text: str, families: tuple[str, ...] | None) -> Spec:
    family, sep, ref = str(text).partition(":")
    known = _FAMILY.fullmatch(family) if families is None else family in families
    if not sep or not known or not ref:
        allowed = "a lowercase word" if families is None else f"one of {', '.join(families)}"
        raise SpecError(f"{text!r} is not a spec of the form family:name with family {allowed}")
    name, _, weights = ref.partition("@")
    if not name:
        raise SpecError(f"{text!r}: no {family} model name before '@'")
    return Spec(family, name, weights)


def zoo_name(text: str) -> str:
    """`clip-s` for `zoo:clip-s` or `clip-s` (zoo functions take either)."""
    return Spec.parse(text, ("zoo",)).name if ":" in text else text
