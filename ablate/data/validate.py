"""Checks on a real source: files and columns exist, images decode, markers match images.

Problems that make a source unusable raise (naming the file, the column and the columns present); single bad
rows (an image that cannot be decoded, a marker count that does not match the images) are skipped when the
training stream meets them, counted and logged (`Skips`); the dry run looks at a source's first rows before
anything trains (`ablate.data.sources.sample_problems`).
"""
from __future__ import annotations

import logging

from datasets import Dataset
from PIL import Image

IMAGE_MARKER = "<image>"
log = logging.getLogger(__name__)


class SourceError(ValueError):
    """A data source that cannot be used as configured."""


def require_columns(table: Dataset, needed: list[str], name: str, kind: str) -> None:
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise SourceError(
            f"{name}: {kind} source has no column {', '.join(repr(c) for c in missing)}; "
            f"columns present: {table.column_names}. Set image_column / text_column in the source config."
        )


def image_ok(path: str) -> bool:
    """True if Pillow can decode the whole file (a JPEG at 1/8 scale, Pillow's draft mode: every byte is still
    read, so a truncated or corrupt file fails, at a fraction of a full decode's cost)."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (1, 1))
            im.load()
        return True
    except (OSError, SyntaxError, ValueError):  # unreadable, truncated, not an image, bomb
        return False


class Skips:
    """Rows skipped as the training stream meets them (`usable` is the stream's filter), for streamed and in-memory
    sources alike: an image that does not decode, or `<image>` markers that do not match the images. Nothing is
    decoded before training (the dry run checks a source's first rows, `sample_problems`); each image is opened
    when its row is met, so a cell's first batch waits for its own rows only.

    Skips are logged with the running counts (the first ten, then at every power of ten: a web-scale source with a
    few per cent of broken images does not flood the log). `rows` (the source's length, when known; else
    `STREAM_LIMIT`) consecutive skips without a usable row raise `SourceError`: a source with no usable row left
    stops the cell instead of looping over it forever."""

    STREAM_LIMIT = 10_000

    def __init__(self, name: str, rows: int | None = None):
        self.name, self.undecodable, self.mismatched = name, 0, 0
        self.limit, self.in_a_row = max(1, rows or self.STREAM_LIMIT), 0

    def usable(self, row: dict) -> bool:
        if row["text"].count(IMAGE_MARKER) != len(row["images"]):
            self.mismatched += 1
        elif any(not image_ok(p) for p in row["images"]):
            self.undecodable += 1
        else:
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            raise SourceError(f"{self.name}: no usable row in {self.in_a_row} rows met one after another "
                              f"({self.undecodable} with an image that cannot be decoded, {self.mismatched} whose "
                              f"{IMAGE_MARKER} markers do not match their images, so far)")
        skipped = self.undecodable + self.mismatched
        if skipped <= 10 or str(skipped).rstrip("0") == "1":
            log.warning("%s: row skipped (so far %d with an image that cannot be decoded, %d whose %s markers do not "
                        "match their images)", self.name, self.undecodable, self.mismatched, IMAGE_MARKER)
        return False

    @property
    def skipped(self) -> int:
        return self.undecodable + self.mismatched
