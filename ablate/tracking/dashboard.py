"""The grid's first view in the MLflow UI: a saved view of the runs table, and the figures it shows.

A cell logs about 60 params and MLflow's runs table shows none of them, nor any metric, until a user picks
columns. MLflow's runs page (3.x) reads saved views from experiment tags `mlflow.sharedViewState.<key>`: each is an
envelope `{"name", "createdAt", "updatedAt", "state"}` whose `state` is the page's search facets and UI state as
JSON text (or `deflate;<base64 zlib>`). The page loads one when its URL says `viewStateShareKey=<key>`, and lists
them all under its "Views" button. So the grid's experiment carries one view, `VIEW_KEY`: the swept axes as
columns (param columns, or the `ablate.axis.*` tag for an axis that is not a param), the main scores in % and
their mean (`view/score_pct/...`, as the report shows them: one decimal) and the wall time in whole seconds
(`view/wall_s`), sorted by the mean score (the report's Avg) with the best first, the report run filtered out, the
run name (which names the axes: `Cell.label()`) wide enough to read. MLflow's table cannot format a column, so a
run logs these display copies beside its figures (`view_metrics`, called by the store's run logger).
`runs_url` is the address that opens it. Column ids are the UI's own:
"params.`connector.name`", "metrics.`score/world_vqa/0shot`", "tags.`ablate.axis.x`", "attributes.`Run Name`".

MLflow has no default view for the runs page (a fresh browser shows the columns it remembers, or none): the view
shows when opened by the address or from "Views".
"""
from __future__ import annotations

import base64
import json
import math
import re
import statistics
import time
import zlib
from typing import TYPE_CHECKING

from ablate.tracking.tags import AXIS_TAG, CELL_TAG, config_params

if TYPE_CHECKING:
    from ablate.config.grid import Grid

VIEW_PREFIX = "mlflow.sharedViewState."     # the runs page's saved views (MLflow's UI: SHARED_VIEW_STATE_TAG_PREFIX)
VIEW_KEY = "ablate-grid"                    # one view per grid experiment, rewritten when the grid changes
VIEW_TAG = VIEW_PREFIX + VIEW_KEY
VIEW_NAME = "ablate: axes and scores"
RUN_NAME_COLUMN = "attributes.`Run Name`"
CREATED_COLUMN = "runDateAndNestInfo"         # the "Created" column (no id of its own: its field)
MAX_TAG_CHARS = 20000                       # MLflow's MAX_EXPERIMENT_TAG_VAL_LENGTH
MAIN_SCORE = re.compile(r"score/(?P<task>[^/]+)/(?P<k>\d+)shot")
BLIND = "_blind"                            # a blind evaluation's task (ablate.evaluation.keys): no main score
PCT_PREFIX = "view/score_pct/"
MEAN_PCT = PCT_PREFIX + "mean"              # the view's sort key
WALL = "view/wall_s"


def pct_metric(score: str) -> str:
    """`score/<task>/<k>shot` -> its % copy, `view/score_pct/<task>/<k>shot`."""
    return PCT_PREFIX + score.removeprefix("score/")


def view_metrics(metrics: dict) -> dict[str, float]:
    """The view's copies of a run's figures: each main score in % to one decimal (as the report prints it), their
    mean to two (the report's Avg: every task x shots score; the sort key, so that close cells do not tie), the
    wall time in whole seconds. Empty when `metrics` hold no main score and no wall time."""
    scores = {k: float(v) for k, v in metrics.items()
              if (m := MAIN_SCORE.fullmatch(k)) and not m["task"].endswith(BLIND)}
    out = {pct_metric(k): round(100 * v, 1) for k, v in scores.items() if math.isfinite(v)}
    if scores and all(math.isfinite(v) for v in scores.values()):
        out[MEAN_PCT] = round(100 * statistics.fmean(scores.values()), 2)
    if "wall_s" in metrics and math.isfinite(float(metrics["wall_s"])):
        out[WALL] = float(round(float(metrics["wall_s"])))
    return out


def score_metrics(grid: "Grid") -> list[str]:
    """The grid's main scores, `score/<task>/<k>shot`, in the order the cells name them."""
    keys: dict[str, None] = {}
    for cell in grid.cells:
        for task in cell.config.eval.tasks:
            for shots in cell.config.eval.shots:
                keys[f"score/{task}/{shots}shot"] = None
    return list(keys)


def axis_columns(grid: "Grid") -> list[str]:
    """A column per swept axis: the param it sets when the store logs it as one param (the store keeps
    `mixture` and `options` whole), else the run's `ablate.axis.<key>` tag (the value's label)."""
    params = config_params(grid.cells[0].config.model_dump(mode="json")) if grid.cells else {}
    return [f"params.`{axis}`" if axis in params else f"tags.`{AXIS_TAG}{axis}`" for axis in grid.axes]


def view_state(grid: "Grid") -> dict:
    """The runs page's state for the grid: search facets and UI state, as MLflow's UI stores them. Columns: the
    run name (it names the axes' values), the mean score and the main scores in %, the wall time, then the axes
    (to sort or filter by), each about as wide as its header or values; the best mean score first."""
    scores = score_metrics(grid)
    shown = [MEAN_PCT] * (len(scores) > 1) + [pct_metric(s) for s in scores]
    metrics = [f"metrics.`{key}`" for key in [*shown, WALL]]
    axes = axis_columns(grid)
    name_chars = max((len(cell.label() or cell.id) for cell in grid.cells), default=20)
    widths = {RUN_NAME_COLUMN: min(max(6 * name_chars + 56, 160), 420), CREATED_COLUMN: 140}
    for column in metrics:
        widths[column] = min(max(round(6.5 * len(column.split("`")[1])) + 30, 100), 240)
    for column, axis in zip(axes, grid.axes):
        longest = max([len(axis), *(len(str(cell.axes.get(axis, ""))) for cell in grid.cells)])
        widths[column] = min(max(round(6.5 * longest) + 30, 80), 240)
    return {
        "searchFilter": f"tags.`{CELL_TAG}` != ''",     # the cells' runs: the report run has no cell id
        "orderByKey": metrics[0] if scores else "attributes.start_time",
        "orderByAsc": False,
        "selectedColumns": [*metrics, *axes],
        "columnOrder": [RUN_NAME_COLUMN, CREATED_COLUMN, *metrics, *axes],
        "columnWidths": widths,
    }


def view_tag_value(grid: "Grid", created_ms: int | None = None) -> str:
    """The experiment tag's value: MLflow's saved-view envelope around the grid's state."""
    state = json.dumps(view_state(grid), separators=(",", ":"))
    now = int(time.time() * 1000)
    envelope = {"name": VIEW_NAME, "createdAt": created_ms or now, "updatedAt": now, "state": state}
    if len(json.dumps(envelope)) > MAX_TAG_CHARS:    # thousands of columns: the UI inflates this form too
        envelope["state"] = "deflate;" + base64.b64encode(zlib.compress(state.encode())).decode("ascii")
    return json.dumps(envelope, separators=(",", ":"))


def read_view(value: str | None) -> dict | None:
    """The state held by a view tag's value (None when absent or not a view ablate can read)."""
    try:
        state = json.loads(value)["state"]
        if state.startswith("deflate;"):
            state = zlib.decompress(base64.b64decode(state.removeprefix("deflate;"))).decode()
        return json.loads(state)
    except (TypeError, ValueError, KeyError, AttributeError, zlib.error):
        return None


def write_view(client, experiment_id: str, grid: "Grid", tags: dict | None = None) -> None:
    """Set the grid's view on its experiment unless `tags` (the experiment's, when known) already hold it."""
    old = (tags or {}).get(VIEW_TAG)
    if old is not None and read_view(old) == view_state(grid):
        return
    created = json.loads(old).get("createdAt") if read_view(old) is not None else None
    client.set_experiment_tag(experiment_id, VIEW_TAG, view_tag_value(grid, created))


def runs_url(base: str, experiment_id: str, view: bool = True) -> str:
    """The runs table of an experiment (MLflow 3 opens an experiment on its GenAI page otherwise), with the
    grid's view."""
    page = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return f"{page}&viewStateShareKey={VIEW_KEY}" if view else page
