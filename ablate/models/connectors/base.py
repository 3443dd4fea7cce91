"""The connector base class: the shape contract, options and which token counts a connector can give.

Every connector maps patch features `(B, h*w, d_in)` of an `h x w` patch grid to `(B, tokens, d_out)` visual
tokens for the LLM. A subclass declares its knobs in `OPTIONS` (name -> default) and which token counts it can
produce for a grid in `possible_tokens`; `ablate.models.connectors.factory` checks both before building it.
"""
from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

ANY = "any n >= 1"  # what `possible_tokens` returns for connectors with learnable queries
MAX_OPTION = 65_536  # no connector size (depth, width, heads, hidden) can be meant past this


class Connector(nn.Module):
    """Base for all connectors. Subclasses implement `__init__` (after `super().__init__`) and `forward`."""

    OPTIONS: ClassVar[dict[str, Any]] = {}
    HOW: ClassVar[str] = ""  # one line saying how the token count comes about, shown in errors and docs

    def __init__(self, d_in: int, d_out: int, grid: tuple[int, int], tokens: int, options: dict[str, Any]):
        super().__init__()
        self.d_in, self.d_out, self.grid, self.tokens = d_in, d_out, tuple(grid), tokens
        self.options = options

    @classmethod
    def possible_tokens(cls, grid: tuple[int, int], options: dict[str, Any]) -> list[int] | str:
        """Sorted token counts this connector can give for `grid`, or `ANY` when any n >= 1 works."""
        return ANY

    @classmethod
    def allows(cls, tokens: int, grid: tuple[int, int], options: dict[str, Any]) -> bool:
        possible = cls.possible_tokens(grid, options)
        return tokens >= 1 if possible == ANY else tokens in possible

    def extra_repr(self) -> str:
        return f"d_in={self.d_in}, d_out={self.d_out}, grid={self.grid}, tokens={self.tokens}"


def resolve_options(name: str, defaults: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """`defaults` updated with `given`; unknown names or wrongly typed values raise `ValueError`."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        allowed = ", ".join(f"{k} (default {v!r})" for k, v in defaults.items()) or "none"
        names = ", ".join(map(repr, unknown))
        raise ValueError(f"connector '{name}' has no option {names}; allowed options: {allowed}")
    for key, value in given.items():
        default = defaults[key]
        ok = (
            isinstance(value, bool) if isinstance(default, bool)
            else isinstance(value, int) and not isinstance(value, bool) if isinstance(default, int)
            else isinstance(value, (int, float)) and not isinstance(value, bool) if isinstance(default, float)
            else isinstance(value, type(default))
        )
        if not ok:
            raise ValueError(
                f"connector '{name}' option '{key}' must be {type(default).__name__} (like its default {default!r}), "
                f"got {value!r}"
            )
        if isinstance(default, bool) or not isinstance(default, int):
            continue
        if not 0 <= value <= MAX_OPTION:   # a size or a count; what a connector cannot build with, it refuses
            raise ValueError(f"connector '{name}' option '{key}' must be a whole number from 0 to {MAX_OPTION}, "
                             f"got {value!r}")
    return {**defaults, **given}


def square_counts(grid: tuple[int, int]) -> list[int]:
    """Token counts s*s with s <= min(h, w): what adaptive pooling to an s x s grid can give without upsampling."""
    return [s * s for s in range(1, min(grid) + 1)]


def side(tokens: int) -> int:
    """The side s of a square count s*s."""
    s = round(tokens**0.5)
    if s * s != tokens:
        raise ValueError(f"{tokens} is not a square number")
    return s
