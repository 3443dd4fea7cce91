"""Streamed sources (`streaming`, the default for webdataset shards): nothing converted into the cache, rows checked
as they are met, mixed with in-memory sources by weight, resumed from the stream's own state."""
from __future__ import annotations

import io
import json
import logging
from itertools import islice

from PIL import Image
from resumes import assert_resumes_exactly
from shards import write_shards

from ablate.config.schema import DataConfig, SourceConfig
from ablate.data import load_source, train_batches
from ablate.data.sources import streams


def arrow_files(folder) -> list:
    return [p for p in folder.rglob("*") if p.suffix == ".arrow" or p.name.startswith("cache-")]


def test_webdataset_shards_stream_by_default_and_nothing_goes_into_the_cache(tmp_path):
    keys = write_shards(tmp_path / "shards")
    source = SourceConfig(kind="caption", path=str(tmp_path / "shards"), format="webdataset")
    assert streams(source) and not streams(SourceConfig(kind="caption", path="x.jsonl"))
    assert not streams(source.model_copy(update={"streaming": False}))
    assert "streaming" not in source.model_dump(exclude_none=True)     # the default leaves cell ids alone
    rows = load_source("caption", source=source, cache_dir=tmp_path / "cache")
    seen = [row["text"] for row in rows]
    assert seen == [f"<image> the word is lamp {k}" for k in keys]
    assert arrow_files(tmp_path / "cache") == [] and not list((tmp_path / "cache" / "hf").rglob("*.arrow"))


def test_an_image_that_does_not_decode_is_skipped_when_met_and_counted(tmp_path, caplog):
    write_shards(tmp_path / "shards", shards=1, rows=5, broken=("00002",))
    source = SourceConfig(kind="caption", path=str(tmp_path / "shards"), format="webdataset")
    with caplog.at_level(logging.WARNING, logger="ablate.data.validate"):
        rows = load_source("caption", source=source, cache_dir=tmp_path / "cache")
        assert not caplog.records                                   # nothing read before the stream is iterated
        texts = [row["text"] for row in rows]
    assert [t[-5:] for t in texts] == ["00000", "00001", "00003", "00004"]
    assert len(caplog.records) == 1 and "1 with an image that cannot be decoded" in caplog.text


def _mixture(tmp_path, tiny_world) -> DataConfig:
    write_shards(tmp_path / "shards")
    captions = tmp_path / "caps.jsonl"
    captions.write_text("".join(json.dumps({"image": r["image"], "text": r["alt"]}) + "\n"
                                for r in tiny_world.read("caption")[:10]))
    return DataConfig(mixture={"caption": 0.6, "text": 0.4}, max_length=64, sources=[
        SourceConfig(kind="caption", path=str(tmp_path / "shards"), format="webdataset"),
        SourceConfig(kind="caption", path=str(captions)),
        SourceConfig(kind="text", path=str(captions))])


def test_a_resumed_stream_from_its_state_gives_exactly_the_batches_that_follow(tmp_path, tiny_world, monkeypatch):
    cfg = _mixture(tmp_path, tiny_world)
    tok = tiny_world.tokenizer()
    run = list(islice(train_batches(cfg, None, tok, 4, batch_size=4, seed=0, cache_dir=tmp_path / "c"), 30))
    streamed = sum("the word is lamp" in tok.decode(b.input_ids[i]) for b in run for i in range(4))
    assert 10 < streamed < 110            # shards and the in-memory files mixed, the shards read more than once
    assert_resumes_exactly(lambda state: train_batches(cfg, None, tok, 4, batch_size=4, seed=0,
                                                      cache_dir=tmp_path / "c", data_state=state), run, 19, monkeypatch)


def test_a_parquet_folder_with_image_bytes_streams_too(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "parquet"
    folder.mkdir()
    for part in range(2):
        rows = []
        for i in range(3):
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), (40 * i, 80, 120)).save(buf, "PNG")
            rows.append({"image": {"bytes": buf.getvalue(), "path": f"{part}-{i}.png"}, "text": f"row {part} {i}"})
        pq.write_table(pa.Table.from_pylist(rows), folder / f"part-{part}.parquet")
    source = SourceConfig(kind="caption", path=str(folder), format="parquet", streaming=True)
    rows = list(load_source("caption", source=source, cache_dir=tmp_path / "cache"))
    assert [r["text"] for r in rows] == [f"<image> row {p} {i}" for p in range(2) for i in range(3)]
    assert all(Image.open(r["images"][0]).size == (8, 8) for r in rows)
    assert not list((tmp_path / "cache").rglob("*.arrow"))


def test_the_dry_runs_look_at_shards_reads_their_first_rows_and_writes_nothing_into_the_cache(tmp_path, monkeypatch):
    import datasets

    from ablate.data.sources import sample_problems

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    write_shards(tmp_path / "shards", shards=2, rows=5, broken=("00002",))
    source = SourceConfig(kind="caption", path=str(tmp_path / "shards"), format="webdataset")
    assert sample_problems(source, rows=4) == (4, 1, 0, "image bytes in the file")
    assert sample_problems(source, rows=2) == (2, 0, 0, "")
    assert [p for p in (tmp_path / "hf").rglob("*") if p.is_file() and p.suffix != ".lock"] == []  # the builder's lock
    assert not (tmp_path / "hf").exists()                      # nor the lock: the look leaves nothing on disk
