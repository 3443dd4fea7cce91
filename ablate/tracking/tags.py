"""The names a cell's MLflow run carries (tags) and its config as params: shared by the store that writes them
and the saved view that shows them as columns."""
from __future__ import annotations

import json

from ablate.config.grid import flatten

CELL_TAG = "ablate.cell_id"
GRID_TAG = "ablate.grid"
AXIS_TAG = "ablate.axis."
REASON_TAG = "ablate.failure"
REPORT_TAG = "ablate.kind"


def config_params(tree: dict) -> dict:
    """A cell config (`model_dump(mode="json")`) as MLflow params: dotted keys (`flatten`), lists and the whole
    `mixture` / `options` mappings as JSON text."""
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in flatten(tree).items()}
