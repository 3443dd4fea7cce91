"""The data tests' resume check: a stream rebuilt from one batch's `data_state` goes on with exactly the batches that
followed it, reading no row before it (a module of its own, imported as `from resumes import ...` from every test
folder, as `shards` is)."""
from __future__ import annotations

import json
from itertools import islice

import torch


def assert_resumes_exactly(make, run: list, at: int, monkeypatch) -> None:
    """`make(data_state)` -> the batches from that state (a `train_batches` call); `run`: the batches of one
    uninterrupted stream. The batches after `run[at]`, made again from its state as a checkpoint stores it (JSON),
    equal `run[at + 1:]`, and the resume never skips rows (`IterableDataset.skip` refused)."""
    import datasets

    def no_skip(*args, **kwargs):
        raise AssertionError("a resume from the stream's state reads no row before it")

    monkeypatch.setattr(datasets.IterableDataset, "skip", no_skip)
    state = json.loads(json.dumps(run[at].data_state))
    resumed = list(islice(make(state), len(run) - at - 1))
    for a, b in zip(run[at + 1:], resumed, strict=True):
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)
