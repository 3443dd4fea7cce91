"""Webdataset shards of real JPEGs that the data and runner tests write (a module of its own: `from shards import
write_shards` works from every test folder, as `tinyworld` does)."""
from __future__ import annotations

import io
import tarfile

import numpy as np
from PIL import Image


def write_shards(folder, shards: int = 3, rows: int = 8, broken: tuple = ()) -> list[str]:
    """Webdataset shards of real JPEGs (`k.jpg` + `k.txt`); keys in `broken` get bytes that are not an image."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = []
    for s in range(shards):
        with tarfile.open(folder / f"shard-{s:05d}.tar", "w") as tar:
            for i in range(rows):
                key = f"{s:02d}{i:03d}"
                buf = io.BytesIO()
                pixels = np.random.default_rng(s * 100 + i).integers(0, 255, (24, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(buf, "JPEG")
                jpg = b"not a jpeg" if key in broken else buf.getvalue()
                for name, data in ((f"{key}.jpg", jpg), (f"{key}.txt", f"the word is lamp {key}".encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                keys.append(key)
    return keys
