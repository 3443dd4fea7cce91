"""Training data: sources of five kinds, mixtures by weight, collation into `Batch` (see docs/data.md).

The names below are loaded on first use, so `ablate.data.vqa` (question files, read the same way by training and
by evaluation) imports without torch and `datasets`.
"""
from __future__ import annotations

import importlib

_WHERE = {
    "Batch": "ablate.data.batch",
    "Collator": "ablate.data.collate",
    "mix": "ablate.data.mixture",
    "normalised": "ablate.data.mixture",
    "mixture_sources": "ablate.data.pipeline",
    "train_batches": "ablate.data.pipeline",
    "FEATURES": "ablate.data.sources",
    "KINDS": "ablate.data.sources",
    "load_source": "ablate.data.sources",
    "SourceError": "ablate.data.validate",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'ablate.data' has no attribute {name!r}")
