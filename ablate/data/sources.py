"""Sources: every kind of training data as a `datasets.Dataset` of `{"text", "images"}` rows.

`text` holds one `<image>` marker per entry of `images` (absolute file paths), in order. Kinds (MM1, Sec. 3.3):
`caption` (image + alt-text), `synthetic` (image + rich VeCap-like caption), `interleaved` (text with several
images), `text` (text only), and `instruction` (question -> answer rows with an `answer` column: the loss is on the
answer only; `ablate.data.instruction`). The embedded world gives all five; real data comes from a `SourceConfig`
(jsonl, parquet, an image folder, webdataset shards, or a hub id) read with `datasets`, in memory or streamed
(`streams`). No image is opened when a source is loaded: the dry run looks at a source's first rows
(`sample_problems`), and training checks each row when its stream meets it (`ablate.data.validate.Skips`).
"""
from __future__ import annotations

import glob
import hashlib
import os
import warnings
from itertools import islice
from pathlib import Path

import datasets
from datasets import Dataset, Features, IterableDataset, List, Value

from ablate.config.schema import KIND_NAMES, SourceConfig
from ablate.data import conversation, instruction, validate
from ablate.data.worldtext import CAPTION_FIELDS, world_text_rows

KINDS: tuple[str, ...] = KIND_NAMES   # declared once: `ablate.config.schema.Kind`
FEATURES = Features({"text": Value("string"), "images": List(Value("string"))})
IMAGE_MARKER = "<image>"
WEBDATASET_IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")


def load_source(kind: str, world=None, source: SourceConfig | None = None, cache_dir: str | Path | None = None
                ) -> Dataset:
    """Rows `{"text", "images"}` of one kind, from the world (`world=`) or a real source (`source=`).

    `cache_dir` holds the `datasets` cache and the image files written out of parquet / webdataset bytes
    (default: the `datasets` cache folder)."""
    if kind not in KINDS:
        raise ValueError(f"unknown source kind {kind!r}; kinds: {', '.join(KINDS)}")
    if source is not None:
        if source.kind != kind:
            raise ValueError(f"source {source.path!r} is of kind {source.kind!r}, asked for {kind!r}")
        if kind == "instruction":
            images_dir = _images_dir(Path(cache_dir) if cache_dir else None)
            base = instruction.image_root(source).resolve()
            return instruction.from_source(source, lambda value: _image_path(value, base, images_dir))
        if kind == "conversation":
            return _conversations(source, Path(cache_dir) if cache_dir else None)
        if streams(source):
            return _stream(source, Path(cache_dir) if cache_dir else None)
        return _real(source, Path(cache_dir) if cache_dir else None)
    if world is None:
        raise ValueError(f"load_source({kind!r}) needs a world or a SourceConfig")
    return _from_world(kind, world)


# ---------------------------------------------------------------- embedded world

def _from_world(kind: str, world) -> Dataset:
    if kind == "instruction":
        return instruction.from_world(world)
    if kind == "conversation":
        return conversation.from_world(world)
    marker = f"{IMAGE_MARKER} " if kind in CAPTION_FIELDS else ""   # a caption follows its image
    rows = [{"text": marker + text, "images": images} for text, images in world_text_rows(kind, world)]
    return Dataset.from_list(rows, features=FEATURES)


# ---------------------------------------------------------------- real sources

def streams(source: SourceConfig) -> bool:
    """Whether a source is read as a stream (`streaming`; by default webdataset shards are, other formats not;
    instruction and conversation files never)."""
    if source.kind in ("instruction", "conversation"):
        return False
    return source.format == "webdataset" if source.streaming is None else source.streaming


def _load(source: SourceConfig, cache_dir: Path | None, streaming: bool = False) -> tuple[Dataset, str]:
    """The raw table (train split) and the name of the file or folder it came from, for messages; `streaming`:
    an `IterableDataset` that reads the files as it is iterated (nothing written to the cache)."""
    cache = str(cache_dir / "hf") if cache_dir else None
    path = source.path
    if source.format == "hub":
        try:
            dsd = datasets.load_dataset(path, cache_dir=cache, streaming=streaming)
        except Exception as e:  # offline, unknown id, gated...
            raise validate.SourceError(f"cannot load hub dataset {path!r} ({type(e).__name__}: {e}); offline runs "
                                       "need a local copy (format json / parquet / imagefolder / webdataset)") from e
        return _train_split(dsd, path), path
    local = Path(path).expanduser()
    if source.format == "imagefolder":
        if not local.is_dir():
            raise FileNotFoundError(f"{source.kind} source: image folder {local} does not exist")
        return _train_split(datasets.load_dataset("imagefolder", data_dir=str(local), cache_dir=cache,
                                                  streaming=streaming), path), path
    if local.is_dir():
        pattern = {"json": "*.jsonl", "parquet": "*.parquet", "webdataset": "*.tar"}[source.format]
        files = sorted(glob.glob(str(local / pattern)))
        if not files:
            raise FileNotFoundError(f"{source.kind} source: no {pattern} file in {local}")
    else:
        files = sorted(glob.glob(str(local))) if any(c in path for c in "*?[") else [str(local)]
        missing = [f for f in files if not Path(f).exists()]
        if not files or missing:
            raise FileNotFoundError(f"{source.kind} source: file {missing[0] if missing else path} does not exist")
    builder = {"json": "json", "parquet": "parquet", "webdataset": "webdataset"}[source.format]
    return _train_split(datasets.load_dataset(builder, data_files=files, cache_dir=cache, streaming=streaming),
                        path), path


def _train_split(dsd, name: str) -> Dataset:
    if isinstance(dsd, (Dataset, IterableDataset)):
        return dsd
    if "train" in dsd:
        return dsd["train"]
    if len(dsd) == 1:
        return next(iter(dsd.values()))
    raise validate.SourceError(f"{name}: several splits {list(dsd)} and none is 'train'")


def _columns(source: SourceConfig, table: Dataset) -> tuple[str, str]:
    """Image and text column names. With the defaults left as they are, interleaved sources fall back to an
    `images` column and webdataset shards to their file extensions (jpg/jpeg/png/webp, txt)."""
    image, text = source.image_column, source.text_column
    if source.kind == "interleaved" and image == "image" and image not in table.column_names:
        image = "images" if "images" in table.column_names else image
    if source.format == "webdataset":
        if image == "image" and image not in table.column_names:
            image = next((k for k in WEBDATASET_IMAGE_KEYS if k in table.column_names), image)
        if text == "text" and text not in table.column_names and "txt" in table.column_names:
            text = "txt"
    return image, text


def _real(source: SourceConfig, cache_dir: Path | None) -> Dataset:
    table, name = _load(source, cache_dir)
    image_col, text_col = _columns(source, table)
    needed = [text_col] if source.kind == "text" else [image_col, text_col]
    validate.require_columns(table, needed, name, source.kind)
    base = (Path(name).parent if Path(name).suffix else Path(name)).resolve()
    images_dir = _images_dir(cache_dir)

    def as_path(value) -> str:
        return _image_path(value, base, images_dir)

    if source.kind == "text":
        texts = table.select_columns([text_col]).to_dict()[text_col]   # whole columns: Arrow -> Python in batches
        return Dataset.from_dict({"text": [str(t) for t in texts], "images": [[] for _ in texts]}, features=FEATURES)
    if image_col in table.features and _is_image_feature(table.features[image_col]):
        table = table.cast_column(image_col, _undecoded(table.features[image_col]))
    columns = table.select_columns(list(dict.fromkeys([text_col, image_col]))).to_dict()
    texts, values = columns[text_col], columns[image_col]
    if source.kind == "interleaved":
        texts = [str(t) for t in texts]
        images = [[as_path(v) for v in (value or [])] for value in values]
    else:
        texts = [f"{IMAGE_MARKER} {t}" for t in texts]
        images = [[as_path(value)] for value in values]
    return Dataset.from_dict({"text": texts, "images": images}, features=FEATURES)   # images checked when met


def _stream(source: SourceConfig, cache_dir: Path | None) -> IterableDataset:
    """A streamed source: its files read as the training stream needs them, each row made `{"text", "images"}` and
    checked when it is met (an image that does not decode, or markers that do not match the images: the row is
    skipped, counted and logged, `validate.Skips`). Image bytes are written to `ablate-images` as rows are met."""
    rows, name = _streamed_rows(source, _images_dir(cache_dir), cache_dir)
    return rows.filter(validate.Skips(name).usable)


def _streamed_rows(source: SourceConfig, images_dir: Path, cache_dir: Path | None = None
                   ) -> tuple[IterableDataset, str]:
    """A source's rows `{"text", "images"}` as a stream (nothing checked), and its name for messages."""
    table, name = _load(source, cache_dir, streaming=True)
    if table.column_names is None:   # features not known up front: the first row says
        table = table._resolve_features()
    image_col, text_col = _columns(source, table)
    needed = [text_col] if source.kind == "text" else [image_col, text_col]
    validate.require_columns(table, needed, name, source.kind)
    base = (Path(name).parent if Path(name).suffix else Path(name)).resolve()
    if image_col in (table.features or {}) and _is_image_feature(table.features[image_col]):
        table = table.cast_column(image_col, _undecoded(table.features[image_col]))
    kind = source.kind

    def to_row(record: dict) -> dict:
        text = record[text_col]
        if kind == "text":
            return {"text": str(text), "images": []}
        value = record[image_col]
        if kind == "interleaved":
            return {"text": str(text), "images": [_image_path(v, base, images_dir) for v in (value or [])]}
        return {"text": f"{IMAGE_MARKER} {text}", "images": [_image_path(value, base, images_dir)]}

    return table.map(to_row, remove_columns=table.column_names).cast(FEATURES), name


SAMPLE_ROWS = 32   # rows of each source the dry run reads


def sample_problems(source: SourceConfig, rows: int = SAMPLE_ROWS) -> tuple[int, int, int, str]:
    """The dry run's look at a local source: its first `rows` rows read as training reads them (streamed; the
    reader's lock files and any image bytes go to a temporary folder, so nothing is left on disk), `(rows read, rows
    with an image that does not decode, rows whose markers do not match their images, the first bad image's path or
    "")`. A missing column raises `validate.SourceError`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ablate-sample-") as tmp:
        if source.kind == "conversation":
            table, _ = _load(source, Path(tmp), streaming=True)
            local = Path(source.path).expanduser()
            base = (Path(source.image_root).expanduser() if source.image_root else
                    local if local.is_dir() else local.parent).resolve()
            first = [{"text": IMAGE_MARKER * len(paths), "images": paths}
                     for record in islice(table, rows)
                     for paths in [[_image_path(v, base, Path(tmp))
                                    for v in conversation.images_of(record.get(source.image_column))]]]
        else:
            stream, _ = _streamed_rows(source, Path(tmp), Path(tmp))
            first = list(islice(stream, rows))
        undecodable = [r for r in first if r["text"].count(IMAGE_MARKER) == len(r["images"])
                       and not all(validate.image_ok(p) for p in r["images"])]
        mismatched = sum(r["text"].count(IMAGE_MARKER) != len(r["images"]) for r in first)
        example = next((p for r in undecodable for p in r["images"] if not validate.image_ok(p)), "")
        if example.startswith(tmp):
            example = "image bytes in the file"
        return len(first), len(undecodable), mismatched, example


def _conversations(source: SourceConfig, cache_dir: Path | None) -> Dataset:
    """A LLaVA / ShareGPT file (or folder of them) as conversation rows (`ablate.data.conversation`); records that
    cannot train are skipped with one warning, images that do not decode as for the other kinds."""
    table, name = _load(source, cache_dir)
    local = Path(name).expanduser()
    base = (Path(source.image_root).expanduser() if source.image_root else
            local if local.is_dir() else local.parent).resolve()
    images_dir = _images_dir(cache_dir)
    rows, skipped = conversation.from_table(table, source, name, lambda value: _image_path(value, base, images_dir))
    if skipped:
        warnings.warn(f"{name}: skipped {skipped} of {len(table)} records without usable turns (roles "
                      f"{'/'.join(conversation.ROLES)}, one assistant turn at least) or whose {IMAGE_MARKER} "
                      "markers do not match their images", stacklevel=2)
    if not rows:
        raise validate.SourceError(f"{name}: no conversation record can train ({len(table)} read)")
    return Dataset.from_list(rows, features=conversation.features())   # images checked when met (`validate.Skips`)


def raw_texts(source: SourceConfig, cache_dir: Path | None = None, rows: int = 300) -> list[str]:
    """The text column of a real (non-instruction) source's first `rows` rows, images left alone (for measuring
    what the tokenizer makes of it, `ablate.data.vocabulary`)."""
    table, name = _load(source, Path(cache_dir) if cache_dir else None)
    if source.kind == "conversation":
        first, _ = conversation.from_table(table.select(range(min(rows, len(table)))), source, name, lambda v: "")
        return [r["text"] for r in first]
    _, text_col = _columns(source, table)
    validate.require_columns(table, [text_col], name, source.kind)
    return [str(t) for t in table.select(range(min(rows, len(table))))[text_col]]


def _images_dir(cache_dir: Path | None) -> Path:
    """Where image bytes from parquet / webdataset sources are written out as files."""
    return (cache_dir or Path(datasets.config.HF_DATASETS_CACHE)) / "ablate-images"


def _is_image_feature(feature) -> bool:
    inner = getattr(feature, "feature", feature)
    return isinstance(feature, datasets.Image) or isinstance(inner, datasets.Image)


def _undecoded(feature):
    if isinstance(feature, datasets.Image):
        return datasets.Image(decode=False)
    return List(datasets.Image(decode=False))


def _image_path(value, base: Path, images_dir: Path) -> str:
    """An absolute path for a path string (relative to `base`, an absolute folder) or an undecoded image {bytes,
    path}: joined and normalised as text, no file system call per row."""
    if isinstance(value, dict):
        if value.get("bytes"):
            data = value["bytes"]
            suffix = Path(value.get("path") or "x.png").suffix or ".png"
            out = images_dir / f"{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
            if not out.exists():
                images_dir.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(out.suffix + f".tmp{id(data)}")
                tmp.write_bytes(data)
                tmp.replace(out)
            return str(out)
        value = value.get("path") or ""
    return os.path.normpath(os.path.join(base, os.path.expanduser(str(value))))   # `base` resolved by the caller

