"""Checks on a real source before training: files exist, columns exist, images decode, markers match images.

Problems that make a source unusable raise (naming the file, the column and the columns present); single bad
rows (an image that cannot be decoded, a marker count that does not match the images) are counted, skipped and
reported with one warning per source.
"""
from __future__ import annotations

import logging
import warnings

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
    """True if Pillow can fully decode the file."""
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except (OSError, SyntaxError, ValueError):  # unreadable, truncated, not an image, bomb
        return False


class Skips:
    """Rows of a streamed source skipped as the stream meets them (`usable` is its filter): an image that does not
    decode, or `<image>` markers that do not match the images. Each skip is logged with the running counts; the
    first rows are checked before training by the dry run, the rest cost nothing up front."""

    def __init__(self, name: str):
        self.name, self.undecodable, self.mismatched = name, 0, 0

    def usable(self, row: dict) -> bool:
        if row["text"].count(IMAGE_MARKER) != len(row["images"]):
            self.mismatched += 1
        elif any(not image_ok(p) for p in row["images"]):
            self.undecodable += 1
        else:
            return True
        log.warning("%s: row skipped (so far %d with an image that cannot be decoded, %d whose %s markers do not "
                    "match their images)", self.name, self.undecodable, self.mismatched, IMAGE_MARKER)
        return False


def drop_bad_rows(table: Dataset, name: str) -> Dataset:
    """Rows whose images all decode and whose `<image>` markers match them; warns with the counts skipped."""
    keep, undecodable, mismatched = [], 0, 0
    for i, (text, images) in enumerate(zip(table["text"], table["images"])):
        if text.count(IMAGE_MARKER) != len(images):
            mismatched += 1
            continue
        bad = sum(not image_ok(p) for p in images)
        if bad:
            undecodable += bad
            continue
        keep.append(i)
    if undecodable or mismatched:
        warnings.warn(
            f"{name}: skipped {len(table) - len(keep)} of {len(table)} rows "
            f"({undecodable} image(s) that cannot be decoded, {mismatched} row(s) whose {IMAGE_MARKER} markers "
            "do not match their images)",
            stacklevel=2,
        )
    if not keep:
        raise SourceError(f"{name}: no usable row left after validation ({len(table)} rows read)")
    return table.select(keep) if len(keep) < len(table) else table
