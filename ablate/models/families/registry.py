"""The backbone families by spec prefix: one line each, `"prefix": "module:attribute"` (a `Family` subclass or
instance), imported on first use. A new family is one file and one line here; code from outside the package joins
the same way (`FAMILIES["open_clip"] = "my_pkg.open_clip:OpenCLIP"`, or a `Family` instance)."""
from __future__ import annotations

import importlib

from ablate.config.spec import Spec, SpecError
from ablate.models.families.base import Family

FAMILIES: dict[str, str | Family | type[Family]] = {
    "zoo": "ablate.models.families.zoo:Zoo",
    "hf": "ablate.models.families.hf:HF",
    "timm": "ablate.models.families.timm:Timm",
    "gguf": "ablate.models.families.gguf:GGUF",
}

_LOADED: dict[tuple, Family] = {}


def family(name: str) -> Family:
    """The `Family` registered as `name` (KeyError naming the known ones otherwise)."""
    if name not in FAMILIES:
        raise KeyError(f"unknown backbone family {name!r}; known: {', '.join(FAMILIES)}")
    entry = FAMILIES[name]
    key = (name, entry)
    if key not in _LOADED:
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = getattr(importlib.import_module(module), attribute)
        _LOADED[key] = entry() if isinstance(entry, type) else entry
    return _LOADED[key]


def families(role: str) -> tuple[str, ...]:
    """The names of the families that fill `role` (`encoder` or `llm`), in registry order."""
    return tuple(name for name in FAMILIES if role in family(name).roles)


def forms(role: str) -> list[str]:
    """The forms users write for `role`, e.g. `hf:<hub id or local folder>`."""
    return [family(name).forms[role] for name in families(role)]


def parse(text: str, role: str) -> tuple[Spec, Family]:
    """`text` parsed as a spec of a family that fills `role`, and that family; `SpecError` otherwise."""
    spec = Spec.parse(text, families(role))
    return spec, family(spec.family)


def spec_family(text: str) -> tuple[Spec, Family] | None:
    """`(spec, family)` for any registered family; None for a malformed or unknown name (the checks report it)."""
    try:
        spec = Spec.parse(text, tuple(FAMILIES))
    except SpecError:
        return None
    return spec, family(spec.family)

