"""`data.workers` > 0: loader processes (torchdata's StatefulDataLoader) make the batches and decode their images; the
batches and their order are those of `data.workers: 0`, and a loader resumed from a batch's state continues with
exactly the batches that followed it."""
from __future__ import annotations

import json
import os
from itertools import islice

import numpy as np
import pytest
import torch
from PIL import Image
from test_streaming import _mixture

from ablate.config.schema import DataConfig
from ablate.data import mixture_sources, train_batches
from ablate.data.batch import Batch
from ablate.data.workers import loader_batches


def _preprocess(images: list) -> torch.Tensor:
    """A stand-in for `encoder.preprocess`: 8x8 pixels of each image."""
    return torch.stack([torch.from_numpy(np.asarray(i.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1)
                        for i in images])


def _maker(cfg, tok, cache):
    # the sources opened once, here, and iterated by the workers, as a cell does (`ablate.cell`): a `datasets`
    # builder made in a forked worker may meet a file lock its parent still holds an instance of
    sources = mixture_sources(cfg, None, cache)

    def make(data_state, start_step, keep=None):
        return train_batches(cfg, None, tok, 4, batch_size=4, seed=0, start_step=start_step, cache_dir=cache,
                             data_state=data_state, keep=keep, sources=sources)
    return make


def test_no_worker_by_default_and_the_default_leaves_cell_ids_alone():
    from ablate.config.schema import CellConfig
    from ablate.resolve import identity_json

    config = CellConfig()
    assert config.data.workers == 0 and '"workers"' not in identity_json(config)
    two = config.model_copy(update={"data": config.data.model_copy(update={"workers": 2})})
    assert '"workers":2' in identity_json(two)
    with pytest.raises(ValueError, match="workers"):
        DataConfig(workers=-1)


def test_a_batch_pins_its_tensors_and_pixels():
    batch = Batch(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long),
                  torch.ones(1, 3, dtype=torch.long), ["a"], torch.tensor([1]), pixel_values=[torch.ones(1, 3, 2, 2)])
    if not torch.cuda.is_available():   # pinning needs an accelerator: the copy is still the same batch
        pytest.skip("no CUDA: nothing to pin into")
    pinned = batch.pin_memory()
    assert pinned.input_ids.is_pinned() and pinned.pixel_values[0].is_pinned()
    assert torch.equal(pinned.pixel_values[0], batch.pixel_values[0])


@pytest.mark.slow
@pytest.mark.parametrize("nodes", [1, 2])
def test_two_workers_make_the_batches_of_none_decode_there_and_resume_exactly(tmp_path, tiny_world, monkeypatch,
                                                                              nodes):
    # streamed shards mixed with in-memory captions and text rows; with `data.nodes` 2 the stream is two parts
    cfg, tok = _mixture(tmp_path, tiny_world).model_copy(update={"nodes": nodes}), tiny_world.tokenizer()
    make = _maker(cfg, tok, tmp_path / "c")
    plain = list(islice(make(None, 0), 12))

    opened = tmp_path / "opened.txt"
    real_open = Image.open

    def counted_open(*args, **kwargs):   # inherited by the forked workers: every process writes its pid
        with open(opened, "a") as f:
            f.write(f"{os.getpid()}\n")
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", counted_open)
    made = list(islice(loader_batches(make, 2, _preprocess, pin=False), 12))
    for a, b in zip(plain, made, strict=True):      # the same batches in the same order
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels) and a.images == b.images
        assert all(p.shape == (1, 3, 8, 8) for p in b.pixel_values)
    pids = {int(line) for line in opened.read_text().split()}
    assert os.getpid() not in pids and len(pids) == 2     # decoded by the two workers, none by this process
    monkeypatch.setattr(Image, "open", real_open)
    assert sum(len(b.images) for b in made) > 10
    for b in made:
        for path, pixels in zip(b.images, b.pixel_values, strict=True):
            with Image.open(path) as image:
                assert torch.equal(pixels, _preprocess([image.convert("RGB")]))

    state = json.loads(json.dumps(made[6].data_state))    # as a checkpoint stores it
    assert state["loader"]["_snapshot"]["_worker_snapshots"]                 # each worker's stream position
    resumed = list(islice(loader_batches(make, 2, _preprocess, pin=False, start_step=7, data_state=state), 5))
    for a, b in zip(plain[7:], resumed, strict=True):
        assert torch.equal(a.input_ids, b.input_ids) and a.images == b.images


def test_micro_batches_keep_each_rows_pixels():
    from ablate.train.loop import micro_batches

    pixels = [torch.full((1, 3, 2, 2), float(i)) for i in range(5)]
    batch = Batch(torch.zeros(4, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long),
                  torch.zeros(4, 3, dtype=torch.long), list("abcde"), torch.tensor([2, 0, 1, 2]), pixel_values=pixels)
    first, second = micro_batches(iter([batch]), 2)
    assert first.images == ["a", "b"] and second.images == ["c", "d", "e"]
    assert [float(p[0, 0, 0, 0]) for p in first.pixel_values] == [0, 1]
    assert [float(p[0, 0, 0, 0]) for p in second.pixel_values] == [2, 3, 4]
