"""`data.workers` > 0: batches made by loader processes (torchdata's `StatefulDataLoader`).

Each of the N worker processes reads the same seeded stream (`train_batches`) and makes every N-th batch: it
tokenises and collates that batch's rows and decodes and resizes its images into pixel tensors
(`Batch.pixel_values`, the encoder's own preprocessing), so the training process decodes no image. The loader
hands the workers' batches out in turn (batch i comes from worker i mod N): the batches and their order are
those of `data.workers: 0`. On CUDA they are pinned (`Batch.pin_memory`) and `prefetch_factor` batches per
worker are made ahead.

Each worker's position is its state (`WorkerBatches.state_dict`: the stream's state after its last batch and the
index of the stream's next batch); `StatefulDataLoader.state_dict()` gathers those of all workers and which worker is
next. Every batch carries the loader's state after it (`data_state = {"loader": ...}`), so a checkpoint resumes
the loader exactly where the batch it stored left it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from ablate.data.batch import Batch


def decode_pixels(preprocess: Callable, paths: list[str]) -> list[torch.Tensor]:
    """Each image of `paths` decoded and preprocessed by `preprocess` (`encoder.preprocess`): `(crops, 3, R, R)`."""
    pixels = []
    for path in paths:
        with Image.open(path) as image:   # in the worker: the training process opens no image
            pixels.append(preprocess([image.convert("RGB")]))
    return pixels


class WorkerBatches(IterableDataset):
    """The batches of `make(data_state, start_step, keep)` (a `train_batches` call: `keep(i)` says whether its batch i
    is collated, the others come out as None) that this worker makes: every `num_workers`-th one, with its pixels."""

    def __init__(self, make: Callable, preprocess: Callable | None, start_step: int = 0):
        self.make, self.preprocess = make, preprocess
        # the stream's state (None: from `start_step`, skipping the rows before), the index of its next batch
        self.stream_state, self.start_step, self.position = None, start_step, 0

    def state_dict(self) -> dict:
        return {"stream": self.stream_state, "start_step": self.start_step, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.stream_state, self.start_step, self.position = state["stream"], state["start_step"], state["position"]

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        me, every = (0, 1) if info is None else (info.id, info.num_workers)
        if info is not None:
            # `datasets` gives an IterableDataset iterated in a loader worker only some of its shards (another
            # order of rows than with no worker): each worker here reads the whole stream and makes its own batches
            # of it, so this (dedicated) process stops saying it is a worker once its place is known
            torch.utils.data._utils.worker._worker_info = None
        start = self.position

        def keep(i: int) -> bool:
            return (start + i) % every == me

        for i, batch in enumerate(self.make(self.stream_state, self.start_step, keep)):
            if batch is None:
                continue
            if self.preprocess is not None:
                batch.pixel_values = decode_pixels(self.preprocess, batch.images)
            # where the stream stands after this batch (the batches until this worker's next one are the other
            # workers': skipped without collating)
            self.stream_state, self.position = batch.data_state, start + i + 1
            yield batch


def loader_batches(make: Callable, workers: int, preprocess: Callable | None, pin: bool, start_step: int = 0,
                   data_state: dict | None = None) -> Iterator[Batch]:
    """The batches of `make` (see `WorkerBatches`) made by `workers` loader processes; `data_state`: a batch's
    `data_state` (`{"loader": StatefulDataLoader.state_dict()}`) to continue after."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    loader = StatefulDataLoader(WorkerBatches(make, preprocess, start_step), batch_size=None, num_workers=workers,
                                pin_memory=pin, prefetch_factor=2, persistent_workers=False)
    if data_state is not None:
        loader.load_state_dict(data_state["loader"])
    for batch in loader:
        batch.data_state = {"loader": loader.state_dict()}
        yield batch
