"""Real sources from tiny local files of every format, and the validation errors."""
import io
import json
import logging
import tarfile
from itertools import islice
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from resumes import assert_resumes_exactly

from ablate.config.schema import DataConfig, SourceConfig
from ablate.data import SourceError, load_source, mixture_sources
from ablate.data.mixture import mix


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


def _bad_rows(tmp_path, png) -> tuple[str, str]:
    good = png("good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    path = _jsonl(tmp_path / "docs.jsonl", [
        {"images": [good], "text": "<image> fine"},
        {"images": [good, str(tmp_path / "broken.png")], "text": "<image> a <image> b"},
        {"images": [good], "text": "no marker here"},
        {"images": [str(tmp_path / "missing.png")], "text": "<image> gone"},
    ])
    return path, good


def test_an_in_memory_source_opens_no_image_until_the_stream_meets_its_rows(tmp_path, png, monkeypatch, caplog):
    path, good = _bad_rows(tmp_path, png)
    opened = []
    real_open = Image.open
    monkeypatch.setattr("ablate.data.validate.Image.open", lambda p, *a: opened.append(p) or real_open(p, *a))
    source = SourceConfig(kind="interleaved", path=path, image_column="images")
    ds = load_source("interleaved", source=source, cache_dir=tmp_path / "cache")
    assert len(ds) == 4 and opened == []                       # loading reads the file, not the images
    sources = mixture_sources(DataConfig(mixture={"interleaved": 1.0}, sources=[source]), cache_dir=tmp_path / "c")
    with caplog.at_level(logging.WARNING, logger="ablate.data.validate"):
        rows = list(islice(mix(sources, {"interleaved": 1.0}, seed=0, checks=sources.checks), 3))
    assert rows == [{"text": "<image> fine", "images": [good]}] * 3     # the only usable row, drawn again and again
    assert opened                                             # images opened as their rows were met
    first_pass = caplog.records[2].getMessage()                # the three bad rows of the first pass, in some order
    assert "docs.jsonl: row skipped" in first_pass
    assert "so far 2 with an image that cannot be decoded, 1 whose <image> markers do not match" in first_pass


def test_a_source_without_a_usable_row_stops_the_stream_instead_of_looping(tmp_path, png):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    path = _jsonl(tmp_path / "bad.jsonl", [{"image": str(tmp_path / "broken.png"), "text": f"row {i}"}
                                           for i in range(3)])
    source = SourceConfig(kind="caption", path=path)
    sources = mixture_sources(DataConfig(mixture={"caption": 1.0}, sources=[source]), cache_dir=tmp_path / "c")
    with pytest.raises(SourceError, match=r"bad.jsonl: no usable row in 3 rows met one after another \(3 with an "
                                          r"image that cannot be decoded"):
        next(iter(mix(sources, {"caption": 1.0}, seed=0, checks=sources.checks)))


def test_the_dry_run_reads_a_sources_first_rows_warns_of_bad_ones_and_refuses_a_source_with_none_usable(
        tmp_path, png, monkeypatch, capsys):
    from ablate.cli import main

    path, _ = _bad_rows(tmp_path, png)
    monkeypatch.chdir(tmp_path)
    grid = tmp_path / "grid.yaml"
    grid.write_text("base:\n  data:\n    mixture: {interleaved: 1.0}\n    sources:\n"
                    f"      - {{kind: interleaved, path: {path}, image_column: images}}\n")
    home = ["--home", str(tmp_path / "home"), "--reports", str(tmp_path / "reports")]
    assert main([*home, "run", str(grid), "--dry-run"]) == 0
    out = capsys.readouterr().out
    said = (f"data.sources: {path}: 3 of its first 4 rows cannot train (2 with an image that cannot be decoded "
            f"({tmp_path / 'broken.png'}), 1 whose <image> markers do not match")
    assert said in " ".join(out.split())
    bad = _jsonl(tmp_path / "bad.jsonl", [{"images": [str(tmp_path / "broken.png")], "text": "<image> x"}])
    grid.write_text(grid.read_text().replace(path, bad))
    assert main([*home, "run", str(grid), "--dry-run"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "data.sources.path" in err and "none of its first 1 rows can train" in err and "bad.jsonl" in err
    grid.write_text(grid.read_text().replace("image_column: images", "image_column: pictures"))
    assert main([*home, "run", str(grid), "--dry-run"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "data.sources" in err and "'pictures'" in err and "columns present" in err
    assert not (tmp_path / "home").exists()


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


def test_a_resumed_in_memory_source_with_skipped_rows_gives_exactly_the_batches_that_follow(tmp_path, png, tok,
                                                                                           monkeypatch):
    from ablate.data import train_batches

    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    good = [png(f"{c}.png", (40 * c, 0, 0)) for c in range(5)]
    broken = [i % 4 == 1 for i in range(12)]            # their text says "lamp", the others' "circle"
    rows = [{"image": str(tmp_path / "broken.png") if broken[i] else good[i % 5],
             "text": f"{'lamp' if broken[i] else 'circle'} {'abcdefgh'[i % 8]}"} for i in range(12)]
    cfg = DataConfig(mixture={"caption": 1.0}, max_length=32,
                     sources=[SourceConfig(kind="caption", path=_jsonl(tmp_path / "caps.jsonl", rows))])
    run = list(islice(train_batches(cfg, None, tok, 4, batch_size=3, seed=0, cache_dir=tmp_path / "c"), 12))
    seen = [tok.decode(b.input_ids[i]) for b in run for i in range(3)]
    assert sum("circle" in text for text in seen) == 36 and not any("lamp" in text for text in seen), seen

    assert_resumes_exactly(lambda state: train_batches(cfg, None, tok, 4, batch_size=3, seed=0,
                                                      cache_dir=tmp_path / "c", data_state=state), run, 6, monkeypatch)


@pytest.mark.slow
def test_a_cell_trains_on_a_parquet_folder_through_ablate_run_skipping_an_image_that_does_not_decode(
        tmp_path, tiny_grid, workspace, caplog, capsys):
    import mlflow
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ablate.cli import main
    from ablate.resolve import load_grid
    from ablate.tracking.results import results_frame
    from ablate.tracking.store import Store

    folder = tmp_path / "parquet"
    folder.mkdir()
    for part in range(2):
        rows = [{"image": {"bytes": b"not an image" if (part, i) == (1, 2) else _png_bytes((30 * i, 90 * part, 60)),
                           "path": f"{part}-{i}.png"}, "text": f"a square of colour {part} {i}"} for i in range(4)]
        pq.write_table(pa.Table.from_pylist(rows), folder / f"part-{part}.parquet")
    source = f'sources: [{{kind: caption, path: "{folder}", format: parquet}}], mixture: {{caption: 1.0}}, '
    grid_path = tiny_grid(axes="connector.name: [avg-pool]", steps=4)
    grid_path.write_text(grid_path.read_text().replace("data: {", "data: {" + source))
    home = ["--home", str(workspace.home), "--reports", str(workspace.reports)]
    with caplog.at_level(logging.WARNING, logger="ablate"):
        assert main([*home, "run", str(grid_path), "--no-report", "--runner", "runners/local.yaml"]) == 0
    frame, _ = results_frame(Store(workspace.tracking_uri, workspace.artifacts), load_grid(grid_path))
    assert list(frame["status"]) == ["FINISHED"]
    metrics = mlflow.MlflowClient(workspace.tracking_uri).get_run(frame["run_id"].iloc[0]).data.metrics
    assert 0 < metrics["train/final_loss"] < 50
    # the dry run's look at the first rows warned of the broken one; training skipped it when met and said so
    said = " ".join(capsys.readouterr().out.split())
    assert "1 of its first 8 rows cannot train (1 with an image that cannot be decoded (image bytes in the " \
           "file))" in said
    assert "parquet: row skipped (so far 1 with an image that cannot be decoded" in caplog.text
