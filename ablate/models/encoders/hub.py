"""Where pretrained weights come from: a local folder or file, the Hugging Face cache, or (online) the hub.

With `HF_HUB_OFFLINE=1` nothing touches the network: a hub id missing from the local cache fails at once with
`NotCachedError`, which says how to fix it, instead of huggingface_hub's retries (measured: 26 s to fail online
without the flag, about 2 s with it; this check takes milliseconds).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from ablate.models.families.base import hub_offline


class NotCachedError(FileNotFoundError):
    """A hub model asked for offline that is not in the local Hugging Face cache."""


def not_cached_message(ref: str, what: str) -> str:
    return (
        f"{what} {ref!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set, so it cannot be "
        f"downloaded. Fix: download it once while online (`huggingface-cli download {ref}` or run without "
        f"HF_HUB_OFFLINE), or pass a local folder instead (`hf:/path/to/folder` saved with save_pretrained)."
    )


def resolve(ref: str, what: str = "model") -> str:
    """A local path for `ref` when it is a path or a cached hub id; the hub id itself when online.

    Raises `NotCachedError` offline when the id is not cached.
    """
    path = Path(ref).expanduser()
    if path.exists():
        return str(path.resolve())
    if ref.startswith(("/", ".", "~")):
        raise FileNotFoundError(f"{what} path {ref!r} does not exist")
    try:
        return snapshot_download(ref, local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError) as err:
        if hub_offline():
            raise NotCachedError(not_cached_message(ref, what)) from err
        return ref  # online: from_pretrained downloads it


def weights_identity(path: str | Path) -> str:
    """A short digest of the weight files under `path` (names, sizes, first and last MiB of each).

    Cheap even for GB checkpoints, and it changes when the weights do, so feature caches keyed on it stay valid.
    """
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.suffix in {".safetensors", ".bin", ".pth", ".pt", ".gguf", ".npz"}
    )
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path) if path.is_dir() else file.name}:{size}".encode())
        with open(file, "rb") as fh:
            digest.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(size - (1 << 20))
                digest.update(fh.read())
    return digest.hexdigest()[:16]
