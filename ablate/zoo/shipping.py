"""Zoo weights shipped with the package: `ablate/zoo/shipped/<name>-<recipe hash>/`, built by the project's recipe.

A shipped folder holds what loading needs (config, safetensors, tokenizer or preprocessor config, `zoo.json`) and
a manifest, `shipped.json`, with a sha256 per file. `ensure_built` installs one into the cache when the cache lacks
that folder: the same name means the same recipe hash, so a folder left from an older recipe or world is never
used. `ship` makes one from a built cache folder (`ablate zoo ship`, docs/backbones.md, "Shipped weights").
"""
from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from ablate.zoo.recipes import fields_hash

SHIPPED_ROOT = Path(__file__).parent / "shipped"   # read at call time: tests point it elsewhere
MANIFEST = "shipped.json"
MARKER = "zoo.json"
# what loading a zoo folder reads (transformers `from_pretrained`, `preprocessor_config.json`, the tokenizer
# files) plus `zoo.json`; sub-folders (the CLIP text tower: used once, for the retrieval figures in zoo.json)
# are left out
SHIPPED_SUFFIXES = (".json", ".safetensors", ".txt", ".model")


class CorruptShipped(Exception):
    """A shipped folder whose files do not match its manifest."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_hash(record: dict) -> str:
    """The recipe hash of a `zoo.json` record (what `recipes.recipe_hash` gives for its recipe and data)."""
    return fields_hash(record["kind"], record["recipe"], record["data"])


def split_name(folder_name: str) -> tuple[str, str]:
    """`lm-s-eb49fd1c8a71` -> `("lm-s", "eb49fd1c8a71")`."""
    name, _, digest = folder_name.rpartition("-")
    return name, digest


def retrain_command(name: str) -> str:
    return f"ablate zoo build --force zoo:{name}"


def refresh_command(names: list[str]) -> str:
    specs = " ".join(f"zoo:{n}" for n in names)
    return f"ablate zoo build --force {specs} && ablate zoo ship {specs}"


def root() -> Path:
    return SHIPPED_ROOT


def shipped_folders(where: Path | None = None) -> list[Path]:
    where = where or root()
    return sorted(p for p in where.iterdir() if p.is_dir() and not p.name.startswith(".")) if where.is_dir() else []


def find(folder_name: str, where: Path | None = None) -> Path | None:
    """The shipped folder named `folder_name` (`<name>-<recipe hash>`), if the package has one."""
    folder = (where or root()) / folder_name
    return folder if (folder / MANIFEST).is_file() else None


def state(name: str, folder_name: str, where: Path | None = None) -> str:
    """`yes` (shipped for the current recipe), `stale` (shipped, for another recipe hash) or `no`."""
    if find(folder_name, where) is not None:
        return "yes"
    return "stale" if any(split_name(p.name)[0] == name for p in shipped_folders(where)) else "no"


def is_shipped_install(folder: Path) -> bool:
    """Whether a cache folder was installed from shipped weights (not trained on this machine)."""
    return (folder / MANIFEST).is_file()


def verify(folder: Path) -> dict:
    """The manifest of `folder` after checking every file it lists; raises `CorruptShipped` saying what differs."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        record = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError, KeyError) as err:
        raise CorruptShipped(f"unreadable manifest or {MARKER}: {err}") from None
    if MARKER not in files:
        raise CorruptShipped(f"the manifest does not list {MARKER}")
    wrong = []
    for rel, expected in files.items():
        path = folder / rel
        if not path.is_file():
            wrong.append(f"{rel} missing")
        elif path.stat().st_size != expected["bytes"] or sha256(path) != expected["sha256"]:
            wrong.append(f"{rel} differs from its sha256 in {MANIFEST}")
    if wrong:
        raise CorruptShipped("; ".join(wrong))
    name, digest = split_name(folder.name)
    if record_hash(record) != digest or record.get("spec") != f"zoo:{name}":
        raise CorruptShipped(f"its {MARKER} is of {record.get('spec')} recipe {record_hash(record)}, "
                             f"not of the folder's name {folder.name}")
    return manifest


def install(source: Path, target: Path) -> dict:
    """Copy the verified files of the shipped folder `source` into the empty folder `target` (`zoo.json` last) and
    check the copies against the manifest. Returns the manifest; raises `CorruptShipped`."""
    manifest = verify(source)
    names = sorted(manifest["files"], key=lambda rel: rel == MARKER)   # the marker last
    for rel in [MANIFEST, *names]:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target / rel)
    # what was copied, not only what was read: a disk that garbled a copy is caught here
    for rel in names:
        if sha256(target / rel) != manifest["files"][rel]["sha256"]:
            raise CorruptShipped(f"the copy of {rel} in {target} differs from the shipped file")
    return manifest


def ship(built: Path, where: Path | None = None) -> tuple[Path, dict]:
    """Copy what loading needs from the built cache folder `built` (`<cache>/zoo/<name>-<hash>/`) into
    `<where>/<name>-<hash>/` with a manifest, replacing that folder and any other shipped folder of the same model
    (an older recipe). Returns the new folder and its manifest."""
    where = where or root()
    record = json.loads((built / MARKER).read_text())
    name, digest = split_name(built.name)
    if record_hash(record) != digest:
        raise ValueError(f"{built}: its {MARKER} is of recipe {record_hash(record)}, not {digest}")
    if is_shipped_install(built):
        raise ValueError(f"{built} holds the shipped weights, not weights built here: build them first "
                         f"({retrain_command(name)})")
    files = sorted(p for p in built.iterdir() if p.is_file() and p.suffix in SHIPPED_SUFFIXES and p.name != MANIFEST)
    where.mkdir(parents=True, exist_ok=True)
    tmp = where / f".{built.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for path in files:
        shutil.copyfile(path, tmp / path.name)
    manifest = {
        "spec": f"zoo:{name}", "recipe_hash": digest,
        "shipped": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "retrain": retrain_command(name),
        "files": {p.name: {"bytes": p.stat().st_size, "sha256": sha256(tmp / p.name)} for p in files},
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    for old in shipped_folders(where):
        if split_name(old.name)[0] == name:
            shutil.rmtree(old)
    tmp.rename(where / built.name)
    return where / built.name, manifest
