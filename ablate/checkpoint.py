"""Checkpoints that describe themselves: the cell config + weights (safetensors) + the training state.

A folder holds `config.json` (the cell config and which modules' weights are stored), `model.safetensors`
(the trained modules; frozen ones are rebuilt from their spec) and, for a checkpoint taken during training, the
training state: `training_state.safetensors` (the optimiser's tensors, RNG states) and `training_state.json`
(step, loss history, scheduler, optimiser settings, seconds the cell has run so far, and the size of each file).
Nothing is unpickled on load: a checkpoint from a shared or copied workspace cannot run code.

Folders are written under a temporary name, flushed to disk and renamed, so a crash never leaves a half-written
checkpoint that looks complete. A training checkpoint keeps the one before it (`last.previous`): a checkpoint that
cannot be read (truncated, corrupt, from an older ablate) is skipped with a warning naming the file, and the cell
resumes from the previous one, or from the start.
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ablate.config.schema import CellConfig
from ablate.config.stages import MODULES, trains_in_any_stage
from ablate.models.mllm import MLLM
from ablate.train.loop import TrainState

log = logging.getLogger(__name__)

FORMAT = "ablate-checkpoint/1"
STATE_FORMAT = "ablate-training-state/1"
STATE_JSON, STATE_TENSORS = "training_state.json", "training_state.safetensors"
LEGACY_STATE = "training_state.pt"    # pickled by older versions: never loaded


@dataclass
class Resumed:
    """A training checkpoint that was loaded: where the cell continues from."""

    state: TrainState
    elapsed_s: float      # seconds the cell had run (all earlier attempts) when the checkpoint was taken
    folder: Path


def trained_modules(cfg: CellConfig) -> list[str]:
    """The modules whose weights a checkpoint stores: the connector, and each module some stage trains."""
    return [name for name in MODULES if name == "connector" or trains_in_any_stage(cfg.train, name)]


def previous_of(folder: Path) -> Path:
    return Path(folder).with_name(f"{Path(folder).name}.previous")


def save_checkpoint(folder: Path, model: MLLM, cfg: CellConfig, state: TrainState | None = None,
                    optimizer=None, scheduler=None, elapsed_s: float = 0.0, keep_previous: bool = False) -> Path:
    """Write a checkpoint folder atomically; with `keep_previous` the one it replaces becomes `<folder>.previous`."""
    folder = Path(folder)
    for stale in folder.parent.glob(f".{folder.name}.*-*") if folder.parent.is_dir() else []:
        shutil.rmtree(stale, ignore_errors=True)   # left by a process killed mid-write (a cell has one writer)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    try:
        _write(tmp, model, cfg, state, optimizer, scheduler, elapsed_s)
    except BaseException:   # a full disk or a kill mid-write: no half-written folder is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep_previous and folder.exists():
        previous = previous_of(folder)
        shutil.rmtree(previous, ignore_errors=True)
        folder.rename(previous)
        tmp.rename(folder)
    else:
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    _fsync(folder.parent)
    return folder


def _write(tmp: Path, model: MLLM, cfg: CellConfig, state: TrainState | None, optimizer, scheduler,
           elapsed_s: float) -> None:
    modules = trained_modules(cfg)
    tensors = {}
    for name in modules:
        for key, value in getattr(model, name).state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().to("cpu").contiguous()
    _untie(tensors)
    save_file(tensors, tmp / "model.safetensors")
    (tmp / "config.json").write_text(json.dumps(
        {"format": FORMAT, "modules": modules, "cell": json.loads(cfg.canonical_json())}, indent=1))
    if state is not None:
        state_tensors: dict[str, torch.Tensor] = {}
        tree = {"optimizer": optimizer.state_dict() if optimizer else None,
                "scheduler": scheduler.state_dict() if scheduler else None, "rng": _rng_state()}
        packed = _pack(tree, state_tensors)
        save_file(state_tensors, tmp / STATE_TENSORS)
        sizes = {name: (tmp / name).stat().st_size for name in ("model.safetensors", "config.json", STATE_TENSORS)}
        (tmp / STATE_JSON).write_text(json.dumps(
            {"format": STATE_FORMAT, "step": state.step, "losses": state.losses, "elapsed_s": elapsed_s,
             "sizes": sizes, "state": packed}))
    for path in tmp.iterdir():
        _fsync(path)


def load_weights(folder: Path, model: MLLM) -> None:
    folder = Path(folder)
    meta = json.loads((folder / "config.json").read_text())
    _apply_weights(folder, model, meta, load_file(folder / "model.safetensors"))


def _apply_weights(folder: Path, model: MLLM, meta: dict, tensors: dict) -> None:
    for name in meta["modules"]:
        part = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        missing, unexpected = getattr(model, name).load_state_dict(part, strict=False)
        missing = [m for m in missing if not _is_tied(getattr(model, name), m)]
        if missing or unexpected:
            raise ValueError(f"checkpoint {folder} does not match the model's {name}: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")


def resume_state(folder: Path, model: MLLM, optimizer, scheduler) -> Resumed | None:
    """Load weights, optimiser, scheduler and RNG from the cell's training checkpoint (`folder`, else the one
    before it); None when there is none that can be read (each unreadable one is named in a warning)."""
    for candidate in (Path(folder), previous_of(folder)):
        if (candidate / LEGACY_STATE).is_file() and not (candidate / STATE_JSON).is_file():
            log.warning("checkpoint %s was written by an older ablate (a pickle, which is never loaded): skipped",
                        candidate / LEGACY_STATE)
            continue
        if not (candidate / STATE_JSON).is_file():
            continue
        try:
            meta, weights, state = _read_training_checkpoint(candidate)
        except _Unreadable as err:
            log.warning("checkpoint %s cannot be read (%s): skipped; the cell resumes from %s", err.path, err.why,
                        "the previous checkpoint if it is good" if candidate == Path(folder) else "the start")
            continue
        _apply_weights(candidate, model, meta, weights)
        if state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        if state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        train_state = TrainState(step=state["step"], losses=[(int(s), float(v)) for s, v in state["losses"]])
        return Resumed(train_state, float(state.get("elapsed_s", 0.0)), candidate)
    return None


class _Unreadable(Exception):
    def __init__(self, path: Path, why: str):
        super().__init__(f"{path}: {why}")
        self.path, self.why = path, why


def _read_training_checkpoint(folder: Path) -> tuple[dict, dict, dict]:
    """Read and check every file of a training checkpoint before any of it touches the model."""
    def read(name: str, how):
        try:
            return how(folder / name)
        except Exception as err:  # noqa: BLE001 - OSError, SafetensorError, JSONDecodeError, ...
            raise _Unreadable(folder / name, f"{type(err).__name__}: {str(err).strip()[:200]}") from err

    saved = read(STATE_JSON, lambda p: json.loads(p.read_text()))
    if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
        raise _Unreadable(folder / STATE_JSON, f"not an {STATE_FORMAT} file")
    for name, size in saved.get("sizes", {}).items():
        actual = (folder / name).stat().st_size if (folder / name).is_file() else None
        if actual != size:
            raise _Unreadable(folder / name, f"{actual if actual is not None else 'no'} bytes where {size} were "
                              "written (truncated or replaced)")
    meta = read("config.json", lambda p: json.loads(p.read_text()))
    weights = read("model.safetensors", load_file)
    tensors = read(STATE_TENSORS, load_file)
    try:
        state = _unpack(saved["state"], tensors)
        state.update(step=int(saved["step"]), losses=saved["losses"], elapsed_s=saved.get("elapsed_s", 0.0))
        _ = meta["modules"], state["optimizer"], state["scheduler"], state["rng"]
    except (KeyError, TypeError, ValueError) as err:
        raise _Unreadable(folder / STATE_JSON, f"incomplete ({type(err).__name__}: {err})") from err
    return meta, weights, state


def read_config(folder: Path) -> CellConfig:
    meta = json.loads((Path(folder) / "config.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder}/config.json: not an ablate checkpoint (format {meta.get('format')!r})")
    return CellConfig.model_validate(meta["cell"])


def load_for_eval(folder: str | Path, cache_root: str | Path | None = None, device: str | None = None) -> MLLM:
    """Rebuild a trained model from a checkpoint folder alone (no grid file needed)."""
    from ablate.models.build import build_mllm
    from ablate.workspace import Workspace

    cfg = read_config(Path(folder))
    cache_root = Path(cache_root) if cache_root else Workspace.create().cache
    model = build_mllm(cfg, cache_root, feature_cache=None, device=device)
    load_weights(Path(folder), model)
    model.eval()
    return model


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _pack(value, tensors: dict):
    """A state tree as JSON, its tensors (and numpy arrays) set aside by key for safetensors."""
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().to("cpu").contiguous()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        key = str(len(tensors))
        tensors[key] = torch.from_numpy(value.astype(np.int64) if value.dtype == np.uint32 else value.copy())
        return {"__ndarray__": key, "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return _pack(value.item(), tensors)
    if isinstance(value, tuple):
        return {"__tuple__": [_pack(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_pack(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _pack(v, tensors) for k, v in value.items()}
        return {"__items__": [[_pack(k, tensors), _pack(v, tensors)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint's training state")


def _unpack(value, tensors: dict):
    if isinstance(value, list):
        return [_unpack(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return tensors[value["__ndarray__"]].numpy().astype(value["dtype"])
    if "__tuple__" in value:
        return tuple(_unpack(v, tensors) for v in value["__tuple__"])
    if "__items__" in value:
        return {_unpack(k, tensors): _unpack(v, tensors) for k, v in value["__items__"]}
    return {k: _unpack(v, tensors) for k, v in value.items()}


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk, so a rename never points at data still in memory."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _untie(tensors: dict) -> None:
    """safetensors refuses shared storage (tied embeddings): store a copy of each alias."""
    seen = {}
    for key, value in list(tensors.items()):
        ptr = (value.data_ptr(), value.shape)
        if ptr in seen:
            tensors[key] = value.clone()
        seen[ptr] = key


def _is_tied(module, key: str) -> bool:
    return "lm_head" in key and getattr(getattr(module, "config", None), "tie_word_embeddings", False)
