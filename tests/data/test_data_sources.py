"""Real sources from tiny local files of every format, and the validation errors."""
import io
import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from ablate.config.schema import SourceConfig
from ablate.data import SourceError, load_source


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _png_bytes(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def test_json_caption_source_resolves_relative_paths(tmp_path, png):
    png("imgs/a.png")
    png("imgs/b.png")
    path = _jsonl(tmp_path / "caps.jsonl", [{"img": "imgs/a.png", "caption": "a red square"},
                                           {"img": str(tmp_path / "imgs/b.png"), "caption": "another"}])
    ds = load_source("caption", source=SourceConfig(kind="caption", path=path, image_column="img",
                                                    text_column="caption"), cache_dir=tmp_path / "cache")
    assert ds.to_list() == [{"text": "<image> a red square", "images": [str(tmp_path / "imgs/a.png")]},
                            {"text": "<image> another", "images": [str(tmp_path / "imgs/b.png")]}]


def test_json_interleaved_and_text_sources(tmp_path, png):
    a, b = png("a.png"), png("b.png")
    inter = _jsonl(tmp_path / "docs.jsonl", [{"images": [a, b], "text": "<image> one <image> two"}])
    ds = load_source("interleaved", source=SourceConfig(kind="interleaved", path=inter),  # 'images' found
                     cache_dir=tmp_path / "cache")
    assert ds.to_list() == [{"text": "<image> one <image> two", "images": [a, b]}]
    text = _jsonl(tmp_path / "t.jsonl", [{"body": "hello"}, {"body": "world"}])
    ds = load_source("text", source=SourceConfig(kind="text", path=text, text_column="body"),
                     cache_dir=tmp_path / "cache")
    assert ds.to_list() == [{"text": "hello", "images": []}, {"text": "world", "images": []}]


def test_parquet_with_image_bytes_is_written_out_to_files(tmp_path):
    path = tmp_path / "caps.parquet"
    pd.DataFrame({"image": [{"bytes": _png_bytes((0, 0, 255)), "path": "blue.png"}],
                  "text": ["a blue square"]}).to_parquet(path)
    ds = load_source("synthetic", source=SourceConfig(kind="synthetic", path=str(path), format="parquet"),
                     cache_dir=tmp_path / "cache")
    (row,) = ds.to_list()
    assert row["text"] == "<image> a blue square"
    assert Path(row["images"][0]).parent == tmp_path / "cache" / "ablate-images"
    assert Image.open(row["images"][0]).getpixel((0, 0)) == (0, 0, 255)


def test_imagefolder_with_metadata(tmp_path, png):
    png("folder/x.png")
    png("folder/y.png", (0, 255, 0))
    _jsonl(tmp_path / "folder" / "metadata.jsonl", [{"file_name": "x.png", "text": "red"},
                                                     {"file_name": "y.png", "text": "green"}])
    ds = load_source("caption", source=SourceConfig(kind="caption", path=str(tmp_path / "folder"),
                                                    format="imagefolder"), cache_dir=tmp_path / "cache")
    rows = sorted(ds.to_list(), key=lambda r: r["text"])
    assert [r["text"] for r in rows] == ["<image> green", "<image> red"]
    assert [Path(r["images"][0]).name for r in rows] == ["y.png", "x.png"]


def test_webdataset_shards(tmp_path):
    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        for key, colour, caption in [("k0", (255, 0, 0), "red"), ("k1", (0, 0, 255), "blue")]:
            for name, data in [(f"{key}.png", _png_bytes(colour)), (f"{key}.txt", caption.encode())]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    ds = load_source("caption", source=SourceConfig(kind="caption", path=str(tmp_path), format="webdataset"),
                     cache_dir=tmp_path / "cache")
    rows = ds.to_list()
    assert [r["text"] for r in rows] == ["<image> red", "<image> blue"]
    assert Image.open(rows[1]["images"][0]).getpixel((0, 0)) == (0, 0, 255)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_source("caption", source=SourceConfig(kind="caption", path=str(tmp_path / "nope.jsonl")))
    with pytest.raises(FileNotFoundError, match="image folder"):
        load_source("caption", source=SourceConfig(kind="caption", path=str(tmp_path / "none"), format="imagefolder"))


def test_missing_column_names_file_column_and_columns_present(tmp_path, png):
    path = _jsonl(tmp_path / "caps.jsonl", [{"image": png("a.png"), "caption": "x"}])
    with pytest.raises(SourceError) as err:
        load_source("caption", source=SourceConfig(kind="caption", path=path), cache_dir=tmp_path / "cache")
    msg = str(err.value)
    assert "caps.jsonl" in msg and "'text'" in msg and "['image', 'caption']" in msg


def test_undecodable_images_and_bad_markers_are_counted_and_skipped(tmp_path, png):
    good = png("good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    path = _jsonl(tmp_path / "docs.jsonl", [
        {"images": [good], "text": "<image> fine"},
        {"images": [good, str(tmp_path / "broken.png")], "text": "<image> a <image> b"},
        {"images": [good], "text": "no marker here"},
        {"images": [str(tmp_path / "missing.png")], "text": "<image> gone"},
    ])
    with pytest.warns(UserWarning, match=r"skipped 3 of 4 rows \(2 image\(s\) that cannot be decoded, 1 row"):
        ds = load_source("interleaved", source=SourceConfig(kind="interleaved", path=path, image_column="images"),
                         cache_dir=tmp_path / "cache")
    assert ds.to_list() == [{"text": "<image> fine", "images": [good]}]


def test_hub_source_offline_fails_with_a_hint(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face Hub (offline mode is enabled)")

    monkeypatch.setattr("ablate.data.sources.datasets.load_dataset", offline)  # no network, whatever the env says
    with pytest.raises(SourceError, match="not-a-dataset.*offline runs need a local copy"):
        load_source("caption", source=SourceConfig(kind="caption", path="someone/not-a-dataset", format="hub"))


def test_kind_checks():
    with pytest.raises(ValueError, match="unknown source kind"):
        load_source("video")
    with pytest.raises(ValueError, match="needs a world or a SourceConfig"):
        load_source("text")
