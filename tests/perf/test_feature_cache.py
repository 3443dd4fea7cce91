"""The frozen-encoder feature cache gives the encoder's own features and is hit by a second cell."""
from __future__ import annotations

import torch

from ablate.models.build import build_mllm
from ablate.models.features import FeatureCache, load_images
from ablate.train.speed import Prefetcher, ReadyBatch, feature_preparer


def test_cache_identical_features_and_hit_across_two_cells(perf_setup):
    bench, shape, paths = perf_setup["bench"], perf_setup["shape"], perf_setup["paths"][:6]
    cache = FeatureCache()
    first = build_mllm(bench.cell_config(perf_setup["specs"], shape, "avg-pool", 4, 1), perf_setup["root"], cache,
                       device="cpu")
    with torch.no_grad():
        live = first.encoder(first.encoder.preprocess(load_images(paths)))
        got = first.features(paths, "cpu")
    torch.testing.assert_close(got, live, rtol=1e-5, atol=1e-6)
    assert (cache.hits, cache.misses, len(cache)) == (0, 6, 6)

    second = build_mllm(bench.cell_config(perf_setup["specs"], shape, "c-abstractor", 16, 1), perf_setup["root"],
                        cache, device="cpu")
    assert second.features.key == first.features.key
    with torch.no_grad():
        again = second.features(paths[::-1], "cpu")
    assert (cache.hits, cache.misses) == (6, 6)                 # every lookup of the second cell hit
    assert torch.equal(again, got.flip(0))


def test_no_cache_when_encoder_trains(perf_setup):
    bench, shape = perf_setup["bench"], perf_setup["shape"]
    cfg = bench.cell_config(perf_setup["specs"], shape, "avg-pool", 4, 1)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"lr_multipliers": {"encoder": 0.1}})})
    model = build_mllm(cfg, perf_setup["root"], FeatureCache(), device="cpu")
    assert model.features.key is None


def test_prefetcher_prepares_features_ahead_and_propagates_errors(perf_setup):
    bench, shape = perf_setup["bench"], perf_setup["shape"]
    model = build_mllm(bench.cell_config(perf_setup["specs"], shape, "avg-pool", 4, 1), perf_setup["root"],
                       FeatureCache(), device="cpu")
    batches = bench.synthetic_batches(perf_setup["paths"], 4, shape["text"], 3, shape["llm"]["vocab_size"], 0)
    stream = Prefetcher(batches, feature_preparer(model, threads=2), depth=2)
    ready = next(stream)
    stream.close()
    assert isinstance(ready, ReadyBatch) and ready.features.shape == (3, 64, 32)   # one crop per image
    with torch.no_grad():
        torch.testing.assert_close(ready.features, model.features(ready.images, "cpu"))

    def broken():
        yield 1
        raise RuntimeError("loader broke")

    stream = Prefetcher(broken())
    assert next(stream) == 1
    try:
        next(stream)
    except RuntimeError as err:
        assert "loader broke" in str(err)
    else:
        raise AssertionError("the loader's error was swallowed")


def test_generation_reuses_cached_features_of_images_in_memory(perf_setup):
    """Evaluation hands the model PIL images: a frozen encoder's features of them are cached by their pixels, so the
    cells of a grid that share an encoder encode the test images once, and generation is unchanged by it."""
    bench, shape, paths = perf_setup["bench"], perf_setup["shape"], perf_setup["paths"][:4]
    cfg = bench.cell_config(perf_setup["specs"], shape, "avg-pool", 4, 1)
    cache = FeatureCache()
    cached = build_mllm(cfg, perf_setup["root"], cache, device="cpu")
    live = build_mllm(cfg, perf_setup["root"], None, device="cpu")
    live.load_state_dict(cached.state_dict())
    images = load_images(paths)
    with torch.no_grad():
        torch.testing.assert_close(cached._visual_from_pil(images), live._visual_from_pil(images))
        assert (cache.hits, cache.misses) == (0, 4)
        again = cached._visual_from_pil([img.copy() for img in images[::-1]])   # equal pixels, other objects
    assert (cache.hits, cache.misses) == (4, 4)
    torch.testing.assert_close(again, live._visual_from_pil(images[::-1]))


def test_a_batch_with_a_loader_workers_pixels_is_prepared_without_opening_an_image(perf_setup, monkeypatch):
    from PIL import Image

    from ablate.data.batch import Batch

    bench, shape = perf_setup["bench"], perf_setup["shape"]
    model = build_mllm(bench.cell_config(perf_setup["specs"], shape, "avg-pool", 4, 1), perf_setup["root"],
                       FeatureCache(), device="cpu")
    made = next(iter(bench.synthetic_batches(perf_setup["paths"], 4, shape["text"], 3, shape["llm"]["vocab_size"],
                                             0)))
    pixels = [model.encoder.preprocess(load_images([p])) for p in made.images]    # as `data.workers` makes them
    batch = Batch(made.input_ids, made.attention_mask, made.labels, list(made.images),
                  torch.tensor([len(made.images)]), pixel_values=pixels)
    with torch.no_grad():
        expected = torch.cat([model.encoder(p) for p in pixels])
        torch.testing.assert_close(expected, model.features(batch.images, "cpu"))   # the features of the files
    model.features.cache = FeatureCache()

    def no_open(*args, **kwargs):
        raise AssertionError("the training process opened an image")

    monkeypatch.setattr(Image, "open", no_open)
    ready = feature_preparer(model, threads=2)(batch)
    torch.testing.assert_close(ready.features, expected)
    assert model.features.cache.misses == len(set(batch.images))     # computed from the pixels, then cached
