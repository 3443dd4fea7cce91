"""Errors about user input: each names the file, the key (and line) and what is allowed."""
from __future__ import annotations

import difflib
from pathlib import Path


class GridError(ValueError):
    """A grid or runner file that cannot be run. The message is one paragraph a user can act on."""

    def __init__(self, path: Path | str, message: str, key: str | None = None, line: int | None = None,
                 allowed: list | None = None, got: object = None):
        self.path, self.key, self.line, self.allowed = str(path), key, line, allowed
        where = self.path + (f", line {line}" if line else "")
        parts = [f"{where}:"]
        if key:
            parts.append(f"key '{key}':")
        parts.append(message.rstrip("."))
        if got is not None and allowed:
            close = difflib.get_close_matches(str(got), [str(a) for a in allowed], n=1)
            if close:
                parts.append(f"(did you mean '{close[0]}'?)")
        text = " ".join(parts) + "."
        if allowed:
            text += " Allowed: " + ", ".join(str(a) for a in allowed) + "."
        super().__init__(text)


class CellCheckError(ValueError):
    """A cell that fails a check needing the registries (`ablate.resolve`): the key, what is wrong, what is allowed.
    The grid turns it into a `GridError` with the file, line and the cell's axis values."""

    def __init__(self, key: str, message: str, allowed: list | None = None, got=None):
        super().__init__(message)
        self.key, self.message, self.allowed, self.got = key, message, allowed, got
