"""Data pipeline speed on the CPU: batches per second from the embedded world (tokenise + collate), and image
decoding + preprocessing, the work a loader must finish within one GPU step."""
from __future__ import annotations

from itertools import islice

from ablate.config.schema import DataConfig


def test_train_batches(benchmark, world):
    """32 batches of 16 rows (caption + interleaved + text mixture), 96 visual tokens per image."""
    from ablate.data import train_batches

    cfg = DataConfig(mixture={"synthetic": 1.0, "interleaved": 1.0, "text": 1.0}, world=world.config, max_length=240)
    tokenizer = world.tokenizer()

    def run():
        return list(islice(train_batches(cfg, world, tokenizer, 96, 16, seed=0), 32))

    batches = benchmark.pedantic(run, rounds=3, iterations=1)
    assert len(batches) == 32 and batches[0].input_ids.shape[0] == 16


def test_collate_only(benchmark, world):
    """Tokenise + collate 16 rows already read (the part of the loader on the training thread)."""
    from ablate.data import Collator

    rows = [{"text": f"<image> {line}", "images": ["x.png"]} for line in
            ["a red square and a blue circle on the left"] * 16]
    collate = Collator(world.tokenizer(), 144, 300)
    batch = benchmark(collate, rows)
    assert batch.input_ids.shape == (16, 1 + 144 + 10 + 1)


def test_decode_and_preprocess_images(benchmark, tiny):
    """Decode 16 PNGs and preprocess them for the encoder (resize + normalise)."""
    from ablate.config.schema import EncoderConfig
    from ablate.models.encoders import build_encoder
    from ablate.models.features import load_images

    encoder = build_encoder(EncoderConfig(name=tiny["specs"]["encoder"], resolution=64), tiny["root"])
    paths = tiny["paths"][:16]
    pixels = benchmark(lambda: encoder.preprocess(load_images(paths)))
    assert pixels.shape == (16, 3, 64, 64)
