"""Checkpoints that describe themselves: the cell config + weights (safetensors) + the training state.

A folder holds `config.json` (the cell config and which modules' weights are stored), `model.safetensors`
(the trained modules; frozen ones are rebuilt from their spec) and, for a checkpoint taken during training,
`training_state.pt` (optimiser, scheduler, step, loss history, RNG states) so that a killed cell continues exactly.
Folders are written under a temporary name and renamed, so a crash never leaves a half-written checkpoint that
looks complete.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ablate.config.schema import CellConfig
from ablate.models.mllm import MLLM
from ablate.train.loop import TrainState

FORMAT = "ablate-checkpoint/1"


def trained_modules(cfg: CellConfig) -> list[str]:
    return [name for name in ("encoder", "connector", "llm") if cfg.train.lr_multipliers.get(name, 1.0) > 0
            or name == "connector"]


def save_checkpoint(folder: Path, model: MLLM, cfg: CellConfig, state: TrainState | None = None,
                    optimizer=None, scheduler=None) -> Path:
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write(tmp, model, cfg, state, optimizer, scheduler)
    except BaseException:   # a full disk or a kill mid-write: no half-written folder is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def _write(tmp: Path, model: MLLM, cfg: CellConfig, state: TrainState | None, optimizer, scheduler) -> None:
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
        torch.save({"optimizer": optimizer.state_dict() if optimizer else None,
                    "scheduler": scheduler.state_dict() if scheduler else None,
                    "step": state.step, "losses": state.losses, "rng": _rng_state()}, tmp / "training_state.pt")


def load_weights(folder: Path, model: MLLM) -> None:
    tensors = load_file(Path(folder) / "model.safetensors")
    for name in json.loads((Path(folder) / "config.json").read_text())["modules"]:
        part = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        missing, unexpected = getattr(model, name).load_state_dict(part, strict=False)
        missing = [m for m in missing if not _is_tied(getattr(model, name), m)]
        if missing or unexpected:
            raise ValueError(f"checkpoint {folder} does not match the model's {name}: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")


def resume_state(folder: Path, model: MLLM, optimizer, scheduler) -> TrainState | None:
    """Load weights, optimiser, scheduler and RNG from a training checkpoint; None if there is none."""
    folder = Path(folder)
    if not (folder / "training_state.pt").is_file():
        return None
    load_weights(folder, model)
    saved = torch.load(folder / "training_state.pt", weights_only=False)
    if saved["optimizer"] is not None:
        optimizer.load_state_dict(saved["optimizer"])
    if saved["scheduler"] is not None:
        scheduler.load_state_dict(saved["scheduler"])
    _set_rng_state(saved["rng"])
    return TrainState(step=saved["step"], losses=[tuple(x) for x in saved["losses"]])


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
