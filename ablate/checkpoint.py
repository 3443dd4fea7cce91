"""Checkpoints that describe themselves: the cell config + weights (safetensors) + the training state.

A folder holds `config.json` (the cell config, which modules' weights are stored, tied tensors, and the frozen
bases by spec and weights digest), `model.safetensors` (only what trains: the connector, a trained encoder, the LLM's
LoRA adapters or, trained fully, its weights with tied embeddings once, in the dtype they train in; frozen modules are
rebuilt from their spec and checked against the digest) and, for a checkpoint taken during training, the
training state: `training_state.safetensors` (the optimiser's tensors, RNG states) and `training_state.json`
(step, loss history, scheduler, optimiser settings, seconds the cell has run so far, and the size and sha256 of
each file, checked before anything is loaded).
Nothing is unpickled on load: a checkpoint from a shared or copied workspace cannot run code.

Folders are written under a temporary name, flushed to disk and renamed, so a crash never leaves a half-written
checkpoint that looks complete. A training checkpoint keeps the one before it (`last.previous`): a checkpoint that
cannot be read (truncated, corrupt, from an older ablate) is skipped with a warning naming the file, and the cell
resumes from the previous one, or from the start.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ablate.config.schema import CellConfig
from ablate.config.stages import MODULES, trains_in_any_stage
from ablate.models.build import build_mllm
from ablate.models.llm import has_adapters, is_adapter
from ablate.models.mllm import MLLM
from ablate.train import parallel
from ablate.train.loop import TrainState
from ablate.workspace import Workspace

log = logging.getLogger(__name__)

FORMAT = "ablate-checkpoint/1"
STATE_FORMAT = "ablate-training-state/1"
STATE_JSON, STATE_TENSORS = "training_state.json", "training_state.safetensors"
LEGACY_STATE = "training_state.pt"    # pickled by older versions: never loaded
SHARDED = "dcp"                       # train.parallel: fsdp: weights and optimiser state through DCP


@dataclass
class Resumed:
    """A training checkpoint that was loaded: where the cell continues from."""

    state: TrainState
    elapsed_s: float      # seconds the cell had run (all earlier attempts) when the checkpoint was taken
    folder: Path


def trained_modules(cfg: CellConfig, stages: list | None = None) -> list[str]:
    """The modules whose weights a checkpoint stores: the connector, and each module some stage trains (`stages`:
    `plan(cfg.train)`, when the caller has made it)."""
    return [name for name in MODULES if name == "connector" or trains_in_any_stage(stages or cfg.train, name)]


def previous_of(folder: Path) -> Path:
    return Path(folder).with_name(f"{Path(folder).name}.previous")


def drop_resume_state(cell_folder: Path) -> list[str]:
    """A finished cell needs only `final/`: its resume state (`last/`, `last.previous/`, a temporary left by a killed
    write) goes, unless `train.keep_resume_state`. Returns the names removed."""
    gone = []
    for path in (cell_folder / "last", previous_of(cell_folder / "last"), *cell_folder.glob(".last.tmp-*"),
                 *cell_folder.glob(".last.old-*")):
        if path.exists():
            shutil.rmtree(path)
            gone.append(path.name)
    return gone


def save_checkpoint(folder: Path, model: MLLM, cfg: CellConfig, state: TrainState | None = None,
                    optimizer=None, scheduler=None, elapsed_s: float = 0.0, keep_previous: bool = False,
                    stages: list | None = None) -> Path:
    """Write a checkpoint folder atomically; with `keep_previous` the one it replaces becomes `<folder>.previous`.
    `stages`: `plan(cfg.train)`, when the caller has made it (it says which modules are stored)."""
    folder = Path(folder)
    if state is not None and cfg.train.parallel == "fsdp":   # every rank writes its shards (`save_sharded`)
        return save_sharded(folder, model, cfg, state, optimizer, elapsed_s, keep_previous, stages)
    for stale in folder.parent.glob(f".{folder.name}.*-*") if folder.parent.is_dir() else []:
        shutil.rmtree(stale, ignore_errors=True)   # left by a process killed mid-write (a cell has one writer)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    try:
        _write(tmp, model, cfg, state, optimizer, scheduler, elapsed_s, stages)
    except BaseException:   # a full disk or a kill mid-write: no half-written folder is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _install(tmp, folder, keep_previous)


def _install(tmp: Path, folder: Path, keep_previous: bool) -> Path:
    """The written folder `tmp` renamed to `folder`; the one it replaces kept as `<folder>.previous` or removed."""
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


def stored_tensors(model: MLLM, cfg: CellConfig, stages: list | None = None) -> tuple[dict, dict, dict, dict]:
    """What a checkpoint stores of `model`: `(tensors, stored, aliases, base)`.

    Only what trains: the connector; the encoder if some stage trains it; the LLM's LoRA adapters when it has
    them, its whole weights when it trains fully (each tensor once: a tied output head is an alias of the
    embeddings, `aliases`), nothing when it is frozen. Tensors keep the dtype they train in. `stored` says per
    module `all` or `adapters`; `base` names each module not stored whole by its spec and weights' digest: a
    reload rebuilds it from the spec and checks the digest."""
    tensors, stored, base = {}, {}, {}
    trained = trained_modules(cfg, stages)
    for name in MODULES:
        module = getattr(model, name)
        adapters = name == "llm" and has_adapters(module)
        if name in trained:
            stored[name] = "adapters" if adapters else "all"
            for key, value in module.state_dict().items():
                if not adapters or is_adapter(key):
                    tensors[f"{name}.{key}"] = value.detach()
        if name not in trained or adapters:
            base[name] = {"spec": getattr(cfg, name).name, "weights": _weights_of(module)}
    aliases = _aliases(tensors)
    for key in aliases:
        del tensors[key]
    return {k: v.to("cpu").contiguous() for k, v in tensors.items()}, stored, aliases, base


def _weights_of(module) -> str | None:
    """The digest of the files a module was built from (`identity` of an encoder, `ablate_weights` of an LLM)."""
    return getattr(module, "identity", None) or getattr(module, "ablate_weights", None)


def _write(tmp: Path, model: MLLM, cfg: CellConfig, state: TrainState | None, optimizer, scheduler,
           elapsed_s: float, stages: list | None = None) -> None:
    tensors, stored, aliases, base = stored_tensors(model, cfg, stages)
    save_file(tensors, tmp / "model.safetensors")
    (tmp / "config.json").write_text(json.dumps(
        {"format": FORMAT, "modules": list(stored), "stored": stored, "aliases": aliases, "base": base,
         "cell": json.loads(cfg.canonical_json())}, indent=1))
    if state is not None:
        state_tensors: dict[str, torch.Tensor] = {}
        tree = {"optimizer": optimizer.state_dict() if optimizer else None,
                "scheduler": scheduler.state_dict() if scheduler else None, "rng": _rng_state()}
        packed = _pack(tree, state_tensors)
        save_file(state_tensors, tmp / STATE_TENSORS)
        sizes = {name: (tmp / name).stat().st_size for name in ("model.safetensors", "config.json", STATE_TENSORS)}
        digests = {name: file_sha256(tmp / name) for name in sizes}   # verified on load: a change of content
        (tmp / STATE_JSON).write_text(json.dumps(
            {"format": STATE_FORMAT, "step": state.step, "losses": state.losses, "processes": state.processes,
                 "data": state.data, "elapsed_s": elapsed_s,
             "sizes": sizes, "sha256": digests, "state": packed}))
    for path in tmp.iterdir():
        _fsync(path)


def load_weights(folder: Path, model: MLLM) -> None:
    folder = Path(folder)
    meta = json.loads((folder / "config.json").read_text())
    _apply_weights(folder, model, meta, load_file(folder / "model.safetensors"))


def _apply_weights(folder: Path, model: MLLM, meta: dict, tensors: dict) -> None:
    """Load what the checkpoint stored into a model rebuilt from the cell's specs (the frozen base: checked
    against the digest the checkpoint names)."""
    for name, was in meta.get("base", {}).items():
        now = _weights_of(getattr(model, name))
        if was.get("weights") and now and was["weights"] != now:
            raise ValueError(f"checkpoint {folder} was trained on {name} {was['spec']} with weights {was['weights']}, "
                             f"but that spec now gives weights {now}: the files behind it changed")
    aliases = meta.get("aliases", {})
    stored = meta.get("stored", {})
    for name in meta["modules"]:
        module = getattr(model, name)
        part = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        missing, unexpected = module.load_state_dict(part, strict=False)
        missing = [m for m in missing if not _is_tied(module, m) and f"{name}.{m}" not in aliases
                   and not (stored.get(name) == "adapters" and not is_adapter(m))]
        if missing or unexpected:
            raise ValueError(f"checkpoint {folder} does not match the model's {name}: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
    for alias, original in aliases.items():   # tied in the model already; an untied one gets its copy
        module_name, key = alias.split(".", 1)
        target = getattr(model, module_name).state_dict().get(key)
        if target is not None and target.data_ptr() != _tensor_at(model, original).data_ptr():
            with torch.no_grad():
                target.copy_(_tensor_at(model, original))


def _tensor_at(model: MLLM, dotted: str) -> torch.Tensor:
    module_name, key = dotted.split(".", 1)
    return getattr(model, module_name).state_dict()[key]


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
        if (candidate / SHARDED).is_dir():   # train.parallel: fsdp (`resume_sharded`)
            resumed = resume_sharded(candidate, model, optimizer)
            if resumed is None:
                continue
            return resumed
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
        train_state = TrainState(step=state["step"], losses=[(int(s), float(v)) for s, v in state["losses"]],
                                 processes=[int(n) for n in state.get("processes", [])], data=state.get("data"))
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
    for name, digest in saved.get("sha256", {}).items():   # same size, other bytes: a disk error, a bad copy
        actual = read(name, file_sha256)
        if actual != digest:
            raise _Unreadable(folder / name, f"its content changed since it was written (sha256 {actual[:12]}... "
                              f"where {digest[:12]}... was written: corrupted)")
    meta = read("config.json", lambda p: json.loads(p.read_text()))
    weights = read("model.safetensors", load_file)
    tensors = read(STATE_TENSORS, load_file)
    try:
        state = _unpack(saved["state"], tensors)
        state.update(step=int(saved["step"]), losses=saved["losses"], elapsed_s=saved.get("elapsed_s", 0.0),
                     processes=saved.get("processes", []), data=saved.get("data"))
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
    cfg = read_config(Path(folder))
    cache_root = Path(cache_root) if cache_root else home_cache(folder)
    model = build_mllm(cfg, cache_root, feature_cache=None, device=device)
    load_weights(Path(folder), model)
    model.eval()
    return model


def home_cache(folder: str | Path) -> Path:
    """The cache of the home a checkpoint lives in (`<home>/checkpoints/<cell>/final` -> `<home>/cache`), where its
    world, zoo backbones and dequantised GGUF already are, wherever the command runs; for a folder outside a home,
    the workspace's (`ABLATE_HOME`, else `./.ablate`)."""
    folder = Path(folder).resolve()
    if len(folder.parents) > 2 and folder.parents[1].name == "checkpoints":
        return Workspace.create(folder.parents[2]).cache
    return Workspace.create().cache


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


def file_sha256(path: Path, chunk: int = 2**20) -> str:
    """The sha256 of a file, read in chunks (a checkpoint of a big LLM does not fit in memory twice)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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


def _aliases(tensors: dict) -> dict[str, str]:
    """`{key: first key}` for each tensor that shares its storage with an earlier one (tied embeddings): stored once."""
    seen, aliases = {}, {}
    for key, value in tensors.items():
        ptr = (value.device, value.data_ptr(), value.shape, value.stride(), value.storage_offset())
        if ptr in seen:
            aliases[key] = seen[ptr]
        else:
            seen[ptr] = key
    return aliases


def _is_tied(module, key: str) -> bool:
    return "lm_head" in key and getattr(getattr(module, "config", None), "tie_word_embeddings", False)


# ---- cells with `train.parallel: fsdp`: training checkpoints through torch.distributed.checkpoint ----

def _stored_names(model: MLLM, cfg: CellConfig, stages: list | None = None) -> tuple[dict, dict, Callable]:
    """`(stored, base, keep)` as `stored_tensors` says them, and `keep(key)`: whether a state-dict key is stored."""
    trained = trained_modules(cfg, stages)
    stored, base = {}, {}
    for name in MODULES:
        module = getattr(model, name)
        adapters = name == "llm" and has_adapters(module)
        if name in trained:
            stored[name] = "adapters" if adapters else "all"
        if name not in trained or adapters:
            base[name] = {"spec": getattr(cfg, name).name, "weights": _weights_of(module)}

    return stored, base, _keeper(stored)


def _keeper(stored: dict) -> Callable[[str], bool]:
    """`keep(key)`: whether a model state-dict key is among what a checkpoint `stored` (module -> all / adapters)."""
    def keep(key: str) -> bool:
        name, _, rest = key.partition(".")
        return name in stored and (stored[name] == "all" or is_adapter(rest))

    return keep


def save_sharded(folder: Path, model: MLLM, cfg: CellConfig, state: TrainState, optimizer, elapsed_s: float,
                 keep_previous: bool, stages: list | None = None) -> Path:
    """Every rank (or one process): a training checkpoint whose weights and optimiser state are a DCP folder
    (`dcp/`, each rank its shards, only what `stored_tensors` would store), beside the usual `config.json` and
    training state (step, losses, stage and schedule, RNG: rank 0's). Written under a temporary name that rank 0
    renames once every rank is done."""
    from ablate.train import sharded

    folder, main = Path(folder), parallel.is_main()
    tmp = folder.with_name(f".{folder.name}.tmp-sharded")
    if main:
        for stale in folder.parent.glob(f".{folder.name}.*-*") if folder.parent.is_dir() else []:
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir(parents=True)
    sharded.barrier()
    stored, base, keep = _stored_names(model, cfg, stages)
    try:
        sharded.save(tmp / SHARDED, model, getattr(optimizer, "optimizer", optimizer), keep)
        if main:
            (tmp / "config.json").write_text(json.dumps(
                {"format": FORMAT, "modules": list(stored), "stored": stored, "aliases": {}, "base": base,
                 "sharded": SHARDED, "cell": json.loads(cfg.canonical_json())}, indent=1))
            stage, scheduler = getattr(optimizer, "stage", None), getattr(optimizer, "scheduler", None)
            tensors: dict[str, torch.Tensor] = {}
            packed = _pack({"optimizer": {"stage": stage.name if stage else None,
                                          "scheduler": scheduler.state_dict() if scheduler else None},
                            "scheduler": None, "rng": _rng_state()}, tensors)
            save_file(tensors, tmp / STATE_TENSORS)
            sizes = {name: (tmp / name).stat().st_size for name in ("config.json", STATE_TENSORS)}
            (tmp / STATE_JSON).write_text(json.dumps(
                {"format": STATE_FORMAT, "step": state.step, "losses": state.losses, "processes": state.processes,
                 "data": state.data, "elapsed_s": elapsed_s,
                 "sizes": sizes, "state": packed}))
            for path in tmp.iterdir():
                _fsync(path)
    except BaseException:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    sharded.barrier()   # every rank's shards are on disk before the folder takes its name
    if main:
        _install(tmp, folder, keep_previous)
    return folder


def resume_sharded(folder: Path, model: MLLM, optimizer) -> Resumed | None:
    """Every rank: resume from a checkpoint of `save_sharded`, written by any number of processes (DCP reshards
    onto this one's); None (with a warning) when its own files cannot be read."""
    from ablate.train import sharded

    try:
        saved = json.loads((folder / STATE_JSON).read_text())
        state = _unpack(saved["state"], load_file(folder / STATE_TENSORS))
        meta = json.loads((folder / "config.json").read_text())
    except Exception as err:  # noqa: BLE001 - OSError, SafetensorError, JSONDecodeError, KeyError
        log.warning("checkpoint %s cannot be read (%s: %s): skipped", folder, type(err).__name__, err)
        return None
    for name, was in meta.get("base", {}).items():
        now = _weights_of(getattr(model, name))
        if was.get("weights") and now and was["weights"] != now:
            raise ValueError(f"checkpoint {folder} was trained on {name} {was['spec']} with weights {was['weights']}, "
                             f"but that spec now gives weights {now}: the files behind it changed")
    tree = state["optimizer"] or {}
    if tree.get("stage") is not None and hasattr(optimizer, "stages"):
        optimizer.enter({s.name: s for s in optimizer.stages}[tree["stage"]])
    sharded.load(folder / SHARDED, model, getattr(optimizer, "optimizer", optimizer), _keeper(meta["stored"]))
    if tree.get("scheduler") is not None and getattr(optimizer, "scheduler", None) is not None:
        optimizer.scheduler.load_state_dict(tree["scheduler"])
    _set_rng_state(state["rng"])
    train_state = TrainState(step=int(saved["step"]), losses=[(int(s), float(v)) for s, v in saved["losses"]],
                             processes=[int(n) for n in saved.get("processes", [])], data=saved.get("data"))
    return Resumed(train_state, float(saved.get("elapsed_s", 0.0)), folder)
