"""Checks of a cell that need the registries: names that must exist, combinations that must be possible.

Each raises `CellCheckError(key, message, allowed, got)`; `load_grid` turns it into a `GridError` with the file and line.
"""
from __future__ import annotations

from ablate.config.grid import CellCheckError
from ablate.config.schema import CellConfig


def check_cell(config: CellConfig) -> None:
    for check in (_check_connector, _check_encoder, _check_llm, _check_tasks):
        check(config)


def _check_connector(config: CellConfig) -> None:
    from ablate.models.connectors import check_tokens, connector_names

    names = connector_names()
    if config.connector.name not in names:
        raise CellCheckError("connector.name", f"unknown connector {config.connector.name!r}", names,
                             config.connector.name)
    from ablate.models.encoders import patch_grid

    try:
        grid = patch_grid(config.encoder)
    except (ValueError, OSError) as err:
        raise CellCheckError("encoder.name", str(err)) from None
    try:
        check_tokens(config.connector.name, config.connector.tokens, grid, dict(config.connector.options))
    except ValueError as err:
        raise CellCheckError(
            "connector.tokens",
            f"{config.connector.name} cannot make {config.connector.tokens} tokens from the {grid[0]}x{grid[1]} "
            f"patch grid of {config.encoder.name} at {config.encoder.resolution} px: {err}",
        ) from None


def _check_encoder(config: CellConfig) -> None:
    from ablate.models.encoders import encoder_families, validate_spec

    try:
        validate_spec(config.encoder.name)
    except ValueError as err:
        raise CellCheckError("encoder.name", str(err), encoder_families(), config.encoder.name) from None


def _check_llm(config: CellConfig) -> None:
    from ablate.models.llm import llm_families, validate_llm_spec

    try:
        validate_llm_spec(config.llm.name)
    except ValueError as err:
        raise CellCheckError("llm.name", str(err), llm_families(), config.llm.name) from None


def _check_tasks(config: CellConfig) -> None:
    from ablate.evaluation.tasks import known_task_names

    allowed = known_task_names(config.eval)
    for task in config.eval.tasks:
        if task not in allowed:
            raise CellCheckError("eval.tasks", f"unknown task {task!r}", allowed, task)
