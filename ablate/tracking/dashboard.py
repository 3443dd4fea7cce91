"""The grid's first view in the MLflow UI, and the MLflow UI server that `ablate ui` starts and stops.

A grid logs about 120 params per run and MLflow's runs table shows none of them, nor any metric, until a user picks
columns. MLflow's runs page (3.x) reads saved views from experiment tags `mlflow.sharedViewState.<key>`: each is an
envelope `{"name", "createdAt", "updatedAt", "state"}` whose `state` is the page's search facets and UI state as
JSON text (or `deflate;<base64 zlib>`). The page loads one when its URL says `viewStateShareKey=<key>`, and lists
them all under its "Views" button. So the grid's experiment carries one view, `VIEW_KEY`: the swept axes as
columns (param columns, or the `ablate.axis.*` tag for an axis that is not a param), the main scores
`score/<task>/<k>shot` and `wall_s`, the best first, the report run filtered out, the run name (which names the
axes: `Cell.label()`) wide enough to read. `runs_url` is the address that opens it. Column ids are the UI's own:
"params.`connector.name`", "metrics.`score/world_vqa/0shot`", "tags.`ablate.axis.x`", "attributes.`Run Name`".

MLflow has no default view for the runs page (a fresh browser shows the columns it remembers, or none): the view
shows when opened by the address or from "Views".
"""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from typing import TYPE_CHECKING

from ablate.tracking.store import AXIS_TAG, CELL_TAG, _flatten

if TYPE_CHECKING:
    from ablate.config.grid import Grid

VIEW_PREFIX = "mlflow.sharedViewState."     # the runs page's saved views (MLflow's UI: SHARED_VIEW_STATE_TAG_PREFIX)
VIEW_KEY = "ablate-grid"                    # one view per grid experiment, rewritten when the grid changes
VIEW_TAG = VIEW_PREFIX + VIEW_KEY
VIEW_NAME = "ablate: axes and scores"
RUN_NAME_COLUMN = "attributes.`Run Name`"
CREATED_COLUMN = "runDateAndNestInfo"         # the "Created" column (no id of its own: its field)
MAX_TAG_CHARS = 20000                       # MLflow's MAX_EXPERIMENT_TAG_VAL_LENGTH
STOP_GRACE_S = 10                           # a stopped server's processes get this long before SIGKILL


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
    params = _flatten(grid.cells[0].config.model_dump(mode="json")) if grid.cells else {}
    return [f"params.`{axis}`" if axis in params else f"tags.`{AXIS_TAG}{axis}`" for axis in grid.axes]


def view_state(grid: "Grid") -> dict:
    """The runs page's state for the grid: search facets and UI state, as MLflow's UI stores them. Columns: the
    run name (it names the axes' values), the main scores and `wall_s`, then the axes (to sort or filter by),
    each about as wide as its header or values; the best cell first."""
    scores = score_metrics(grid)
    metrics = [f"metrics.`{key}`" for key in [*scores, "wall_s"]]
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


# ---- `ablate ui` ----
class Stopped(Exception):
    """SIGTERM or SIGHUP arrived while the UI was serving."""


def serve(tracking_uri: str, port: int, host: str = "127.0.0.1", say=print) -> int:
    """Run `mlflow ui` on the store until it exits or this process is stopped (Ctrl-C, SIGTERM, SIGHUP); on the
    way out, stop it with everything it started; 0 when stopped so, else the server's own exit status.

    The server runs in a process group of its own (uvicorn and MLflow's job runner start more processes, and a
    signal sent to `ablate` alone would leave them serving): the whole group gets SIGTERM, then SIGKILL after
    STOP_GRACE_S. MLflow's job runner (GenAI scorers, seven more processes) is off unless
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION says otherwise."""
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}

    def stop(signum, frame):
        raise Stopped(signal.Signals(signum).name)

    saved = {sig: signal.signal(sig, stop) for sig in _STOP_SIGNALS}
    try:
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri,
                                   "--host", host, "--port", str(port), "--workers", "1"],
                                  start_new_session=True, env=env)
        try:
            return server.wait()
        except (KeyboardInterrupt, Stopped) as why:
            say(f"stopping the MLflow UI ({str(why) or 'Ctrl-C'}) ...")
            return 0
        finally:
            stop_group(server)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


_STOP_SIGNALS = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]


def stop_group(process: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the process group led by `process`, SIGKILL to what is left of it after `grace_s`; meanwhile
    Ctrl-C and SIGTERM wait (a second Ctrl-C must not leave the server half-stopped)."""
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, *_STOP_SIGNALS)}
    try:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            process.wait()
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and group_alive(process.pid, process):
            time.sleep(0.1)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)


def group_alive(pgid: int, leader: subprocess.Popen | None = None) -> bool:
    """Whether a process of group `pgid` is still running; zombies waiting to be reaped do not count where
    /proc tells them apart (Linux)."""
    if leader is not None:
        leader.poll()          # reap the leader, so that it stops counting once it has exited
    if not os.path.isdir("/proc"):
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()   # after the command name, which may hold spaces
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False
