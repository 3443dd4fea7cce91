"""A claim on a cell: a file lock, so that two workers (or two `ablate run` by mistake) never run one cell."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


@contextmanager
def claim(lock_dir: Path, cell_id: str):
    """Yields True when this process holds the cell, False when another one does."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_dir / f"{cell_id}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
