"""Training data: sources of four kinds, mixtures by weight, collation into `Batch` (see docs/data.md)."""
from ablate.data.batch import Batch
from ablate.data.collate import Collator
from ablate.data.mixture import mix, normalised
from ablate.data.pipeline import mixture_sources, train_batches
from ablate.data.sources import FEATURES, KINDS, load_source
from ablate.data.validate import SourceError

__all__ = [
           "FEATURES",
           "KINDS",
           "Batch",
           "Collator",
           "SourceError",
           "load_source",
           "mix",
           "mixture_sources",
           "normalised",
           "train_batches",
]
