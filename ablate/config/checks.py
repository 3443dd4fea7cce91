"""Checks of a cell that need the registries: names that must exist, combinations that must be possible.

Each raises `CellCheckError(key, message, allowed, got)`; `load_grid` turns it into a `GridError` with the file and line.
"""
from __future__ import annotations

import os
from pathlib import Path

from ablate.config.grid import CellCheckError
from ablate.config.schema import CellConfig


def check_cell(config: CellConfig) -> None:
    for check in (_check_encoder, _check_llm, _check_connector, _check_tasks):
        check(config)


def _check_connector(config: CellConfig) -> None:
    from ablate.models.connectors import check_tokens, connector_names

    names = connector_names()
    if config.connector.name not in names:
        raise CellCheckError("connector.name", f"unknown connector {config.connector.name!r}", names,
                             config.connector.name)
    grid = patch_grid(config)
    if grid is None:      # a timm encoder: its grid is known once built; the build checks the count
        return
    try:
        check_tokens(config.connector.name, config.connector.tokens, grid, dict(config.connector.options))
    except ValueError as err:
        raise CellCheckError(
            "connector.tokens",
            f"{config.connector.name} cannot make {config.connector.tokens} tokens from the {grid[0]}x{grid[1]} "
            f"patch grid of {config.encoder.name} at {config.encoder.resolution} px: {err}",
        ) from None


ENCODER_FORMS = ["zoo:<objective>-<size>", "hf:<hub id or local folder>", "timm:<model name>"]
LLM_FORMS = ["zoo:lm-<size>", "hf:<hub id or local folder>", "gguf:<file.gguf>"]


def _zoo_names(kind: str) -> list[str]:
    from ablate.zoo.recipes import RECIPES

    return [f"zoo:{name}" for name, recipe in RECIPES.items() if recipe.kind == kind]


def _check_spec(key: str, spec: str, forms: list[str], zoo_kind: str) -> None:
    family, sep, ref = spec.partition(":")
    families = [f.split(":")[0] for f in forms]
    if not sep or family not in families or not ref:
        raise CellCheckError(key, f"{spec!r} is not a spec of the form family:name", forms, spec)
    if family == "zoo" and spec not in _zoo_names(zoo_kind):
        raise CellCheckError(key, f"unknown zoo model {spec!r}", _zoo_names(zoo_kind), spec)
    if family in ("hf",) and not _local_or_cached(ref):
        raise CellCheckError(key, f"{ref!r} is neither a local folder nor in the Hugging Face cache, and the hub "
                                  "cannot be reached offline (HF_HUB_OFFLINE=1): download it once when online "
                                  "(huggingface-cli download ...) or give a local folder")
    if family == "gguf" and not Path(ref).is_file():
        raise CellCheckError(key, f"GGUF file {ref!r} does not exist")


def _local_or_cached(ref: str) -> bool:
    if Path(ref).is_dir():
        return True
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        return True     # online: the loader downloads it
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(ref, "config.json"), str)


def _check_encoder(config: CellConfig) -> None:
    _check_spec("encoder.name", config.encoder.name, ENCODER_FORMS, "encoder")


def _check_llm(config: CellConfig) -> None:
    _check_spec("llm.name", config.llm.name, LLM_FORMS, "lm")


def patch_grid(config: CellConfig) -> tuple[int, int] | None:
    """The encoder's patch grid at the cell's resolution, known without building the encoder (None: timm)."""
    family, _, ref = config.encoder.name.partition(":")
    resolution = config.encoder.resolution
    if family == "zoo":
        from ablate.zoo.recipes import recipe_for

        patch = recipe_for(ref).patch
    elif family == "hf":
        from transformers import AutoConfig

        hf_config = AutoConfig.from_pretrained(ref)
        patch = getattr(getattr(hf_config, "vision_config", hf_config), "patch_size")
    else:
        return None
    if resolution < patch:
        raise CellCheckError("encoder.resolution", f"resolution {resolution} is smaller than the encoder's patch "
                             f"size {patch}", got=resolution)
    return resolution // patch, resolution // patch


def _check_tasks(config: CellConfig) -> None:
    from ablate.evaluation.tasks import known_task_names

    allowed = known_task_names(config.eval)
    for task in config.eval.tasks:
        if task not in allowed:
            raise CellCheckError("eval.tasks", f"unknown task {task!r}", allowed, task)
