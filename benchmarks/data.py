"""Data path figures on this machine (docs/performance.md, "Data path"): a standalone script, not a test.

    python benchmarks/data.py loader   [--rows 2000] [--workers 0 1 2] [--sizes 224 384]
    python benchmarks/data.py start    [--sizes 1000 100000 1000000] [--no-skip]
    python benchmarks/data.py padding  [--batches 50]

- `loader`: samples/s of reading webdataset JPEG shards (640x480) and decoding + resizing each image to R px, in the
  training process (0 workers) or in `torch.utils.data.DataLoader` worker processes over the same `datasets`
  stream (shards divided among the workers by the library).
- `start`: seconds to the first batch of a source of N rows, streamed (webdataset shards) and in memory (a jsonl
  caption file over JPEG files), fresh (an empty cache: an in-memory source is converted into Arrow first) and
  again (the cache there), and resumed at step 10 and at a step 10,000x later (or 90 % into the source), from the
  stream's state (`IterableDataset.state_dict`) and, for comparison, by skipping the rows before
  (`IterableDataset.skip`, what a checkpoint without the state costs; `--no-skip` leaves it out).
- `padding`: the padding share of the default world's training batches (`data/padding_fraction` as a cell logs it),
  with and without `data.packing`, and the real tokens/s of tokenise + collate (the model's tokens/s with packing
  is the GPU script's to measure: on a CPU the step, not the padding, is the cost).
Shards are written once under --out (default /tmp/ablate-bench-data); every figure is printed with `uptime`'s load.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import time
from itertools import islice
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load() -> str:
    return os.popen("uptime").read().strip().split("load average:")[-1].strip()


def write_shards(folder: Path, rows: int, per_shard: int = 1000, size=(640, 480)) -> Path:
    """`rows` JPEG + caption pairs in shards of `per_shard` (written once; a `done` file marks a complete set)."""
    folder = folder / f"{rows}-{size[0]}x{size[1]}"
    if (folder / "done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    jpegs = []
    for k in range(16):   # 16 distinct images, reused: the bytes differ little from real photos' cost to decode
        buf = io.BytesIO()
        Image.fromarray(np.roll(base, k, axis=0)).resize(size).save(buf, "JPEG", quality=85)
        jpegs.append(buf.getvalue())
    for s in range(0, rows, per_shard):
        with tarfile.open(folder / f"shard-{s // per_shard:06d}.tar", "w") as tar:
            for i in range(s, min(rows, s + per_shard)):
                for name, data in ((f"{i:08d}.jpg", jpegs[i % 16]), (f"{i:08d}.txt", b"a red square on the left")):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    (folder / "done").write_text("")
    return folder


def _source(folder: Path):
    from ablate.config.schema import SourceConfig

    return SourceConfig(kind="caption", path=str(folder), format="webdataset")


def loader(args) -> None:
    import datasets
    import torch
    from PIL import Image

    folder = write_shards(Path(args.out), args.rows, per_shard=max(1, args.rows // 8))
    files = sorted(str(p) for p in folder.glob("*.tar"))
    for size in args.sizes:
        for workers in args.workers:
            stream = datasets.load_dataset("webdataset", data_files=files, split="train", streaming=True)

            def decode(row, size=size):
                with Image.open(io.BytesIO(row["jpg"]["bytes"])) as img:
                    pixels = np.asarray(img.convert("RGB").resize((size, size), Image.BICUBIC))
                return {"pixels": torch.from_numpy(pixels.copy()).permute(2, 0, 1), "txt": row["txt"]}

            stream = stream.cast_column("jpg", datasets.Image(decode=False)).map(decode, remove_columns=["jpg"])
            batches = torch.utils.data.DataLoader(stream.with_format("torch"), batch_size=32, num_workers=workers)
            started, seen = time.perf_counter(), 0
            for batch in batches:
                seen += batch["pixels"].shape[0]
            took = time.perf_counter() - started
            print(f"loader {size} px, {workers} workers: {seen / took:.0f} samples/s ({seen} rows, {took:.1f} s; "
                  f"load {load()})", flush=True)


def write_captions(folder: Path, rows: int, size=(64, 48)) -> Path:
    """A caption file of `rows` rows (jsonl) over 16 JPEG files beside it (written once)."""
    folder = folder / f"captions-{rows}-{size[0]}x{size[1]}"
    if (folder / "done").exists():
        return folder / "captions.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    for k in range(16):
        Image.fromarray(np.roll(base, k, axis=0)).resize(size).save(folder / f"{k}.jpg", "JPEG", quality=85)
    with open(folder / "captions.jsonl", "w") as f:
        for i in range(rows):
            f.write(f'{{"image": "{i % 16}.jpg", "text": "a red square on the left"}}\n')
    (folder / "done").write_text("")
    return folder / "captions.jsonl"


def start(args) -> None:
    import shutil

    from ablate.config.schema import DataConfig, SourceConfig
    from ablate.data import train_batches
    from ablate.world.tokenizer import build_tokenizer

    tok = build_tokenizer(["a red square on the left"])
    for rows in args.sizes:
        sources = {
            "streamed webdataset": _source(write_shards(Path(args.out), rows, per_shard=1000, size=(64, 48))),
            "in-memory jsonl": SourceConfig(kind="caption", path=str(write_captions(Path(args.out), rows))),
        }
        for what, source in sources.items():
            cfg = DataConfig(mixture={"caption": 1.0}, sources=[source], max_length=64)
            cache = Path(args.out) / "cache" / what.replace(" ", "-")
            shutil.rmtree(cache, ignore_errors=True)   # "fresh": the Arrow conversion of an in-memory source included

            def first(**kwargs):
                started = time.perf_counter()
                batch = next(train_batches(cfg, None, tok, 4, 16, 0, cache_dir=cache, **kwargs))
                return time.perf_counter() - started, batch

            took, _ = first()
            again, _ = first()
            print(f"start {what} {rows} rows: first batch {took:.2f} s fresh, {again:.2f} s again "
                  f"(load {load()})", flush=True)
            far = min(10 * 10_000, int(rows * 0.9) // 16)
            for step in (10, far):
                stream = train_batches(cfg, None, tok, 4, 16, 0, cache_dir=cache)
                state = next(islice(stream, step - 1, None)).data_state   # reaching the state is the setup, not timed
                took, _ = first(data_state=state)
                skip_took, _ = first(start_step=step) if args.skip else (float("nan"), None)
                print(f"start {what} {rows} rows: resumed at step {step}: {took:.2f} s from the stream's state, "
                      f"{skip_took:.2f} s by skipping the rows before (load {load()})", flush=True)


def padding(args) -> None:
    from ablate.config.schema import DataConfig, WorldConfig
    from ablate.data import train_batches
    from ablate.world import build_world

    world = build_world(WorldConfig(), Path(args.out) / "world")
    tok = world.tokenizer()
    for packing in (False, True):
        # the default cell's data (synthetic captions, max_length 240) and a mixture with text and instruction rows
        for mixture in ({"synthetic": 1.0}, {"caption": 0.4, "text": 0.3, "instruction": 0.3}):
            cfg = DataConfig(world=world.config, mixture=mixture, packing=packing)
            started, tokens, padded, positions = time.perf_counter(), 0, 0, 0
            for batch in islice(train_batches(cfg, world, tok, 64, 16, 0), args.batches):
                real = int(batch.attention_mask.sum())
                tokens, padded = tokens + real, padded + batch.attention_mask.numel() - real
                positions += batch.attention_mask.numel()
            took = time.perf_counter() - started
            print(f"padding {'packed' if packing else 'unpacked'} {mixture}: {padded / positions:.1%} of the "
                  f"positions ({positions // args.batches} a batch of 16 rows, 64 visual tokens); tokenise + collate "
                  f"{tokens / took:.0f} real tokens/s (load {load()})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["loader", "start", "padding"])
    parser.add_argument("--out", default="/tmp/ablate-bench-data")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--no-skip", dest="skip", action="store_false",
                        help="start: leave out the resume by skipping rows (it grows with the step: hours at 10^6)")
    args = parser.parse_args()
    args.sizes = args.sizes or {"loader": [224, 384], "start": [1000, 100_000, 1_000_000]}.get(args.part, [])
    {"loader": loader, "start": start, "padding": padding}[args.part](args)


if __name__ == "__main__":
    main()
