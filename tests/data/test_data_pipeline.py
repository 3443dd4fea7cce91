"""train_batches over the embedded world: content, determinism, resume at a step."""
from itertools import islice

import torch

from ablate.config.schema import DataConfig
from ablate.data import load_source, train_batches


def test_world_sources_have_the_unified_schema(tiny_world):
    caption = load_source("caption", world=tiny_world)
    synthetic = load_source("synthetic", world=tiny_world)
    inter = load_source("interleaved", world=tiny_world)
    text = load_source("text", world=tiny_world)
    for ds in (caption, synthetic, inter, text):
        assert ds.column_names == ["text", "images"]
        assert all(row["text"].count("<image>") == len(row["images"]) for row in ds)
    rows = tiny_world.read("caption")
    assert caption[0] == {"text": "<image> " + rows[0]["alt"], "images": [rows[0]["image"]]}
    assert synthetic[0] == {"text": "<image> " + rows[0]["rich"], "images": [rows[0]["image"]]}
    assert len(inter) == 6 and len(text) == 12 and all(r["images"] == [] for r in text)


def test_batches_are_deterministic_and_resume_at_a_step(tiny_world):
    cfg = DataConfig(mixture={"caption": 0.45, "interleaved": 0.45, "text": 0.1}, max_length=96)
    tok = tiny_world.tokenizer()
    run = list(islice(train_batches(cfg, tiny_world, tok, 8, batch_size=4, seed=0), 6))
    again = list(islice(train_batches(cfg, tiny_world, tok, 8, batch_size=4, seed=0), 6))
    resumed = list(islice(train_batches(cfg, tiny_world, tok, 8, batch_size=4, seed=0, start_step=4), 2))
    other = next(train_batches(cfg, tiny_world, tok, 8, batch_size=4, seed=1))
    for a, b in zip(run, again):
        assert torch.equal(a.input_ids, b.input_ids) and a.images == b.images
    for a, b in zip(run[4:], resumed):
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels) and a.images == b.images
    assert not (other.input_ids.shape == run[0].input_ids.shape and torch.equal(other.input_ids, run[0].input_ids))
    for b in run:
        assert b.input_ids.shape[1] <= 96
        assert (b.input_ids == tok.convert_tokens_to_ids("<image>")).sum() == 8 * len(b.images)
        assert int(b.n_images.sum()) == len(b.images)
        assert 0.0 <= b.padding_fraction < 1.0
