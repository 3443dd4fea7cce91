"""The grid's view of MLflow's runs table (an experiment tag the runs page loads by its key) and `ablate ui`'s
server, which must not outlive the command."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ablate.resolve import load_grid
from ablate.tracking import dashboard
from ablate.tracking.dashboard import (
    VIEW_KEY,
    VIEW_TAG,
    read_view,
    runs_url,
    view_metrics,
    view_state,
    view_tag_value,
)
from ablate.tracking.ui import STOP_GRACE_S

GRID = """name: dash
base:
  encoder: {name: "zoo:clip-read-s"}
  llm: {name: "zoo:lm-s"}
  data: {mixture: {synthetic: 1.0, caption: 1.0}}
  eval: {tasks: [world_vqa, world_textvqa], shots: [0, 2]}
axes:
  connector.name: [avg-pool, attn-pool]
  data.mixture.caption: [0.5, 1.0]
"""


@pytest.fixture
def grid(tmp_path):
    path = tmp_path / "dash.yaml"
    path.write_text(GRID)
    return load_grid(path)


def test_the_view_shows_the_axes_and_the_main_scores(grid):
    state = view_state(grid)
    scores = ["metrics.`view/score_pct/world_vqa/0shot`", "metrics.`view/score_pct/world_vqa/2shot`",
              "metrics.`view/score_pct/world_textvqa/0shot`", "metrics.`view/score_pct/world_textvqa/2shot`"]
    mean = "metrics.`view/score_pct/mean`"
    # an axis the store logs as a param is a param column; one inside the mixture (logged whole) is its axis tag
    axes = ["params.`connector.name`", "tags.`ablate.axis.data.mixture.caption`"]
    assert state["selectedColumns"] == [mean, *scores, "metrics.`view/wall_s`", *axes]
    assert state["columnOrder"][0] == dashboard.RUN_NAME_COLUMN
    assert state["columnOrder"][-len(axes):] == axes
    assert state["orderByKey"] == mean and state["orderByAsc"] is False            # the best mean score first
    longest = max(len(cell.label()) for cell in grid.cells)
    assert state["columnWidths"][dashboard.RUN_NAME_COLUMN] >= 6 * longest        # run names are not cut
    assert set(state["columnWidths"]) >= set(state["selectedColumns"])
    # the UI's own names: facets and UI state keys it reads from a shared view
    assert set(state) <= {"searchFilter", "orderByKey", "orderByAsc", "selectedColumns", "columnOrder",
                          "columnWidths"}


def test_the_tag_is_mlflows_saved_view_envelope(grid, monkeypatch):
    value = json.loads(view_tag_value(grid, created_ms=123))
    assert value["name"] == dashboard.VIEW_NAME and value["createdAt"] == 123 and value["updatedAt"] >= 123
    assert json.loads(value["state"]) == view_state(grid)                           # plain JSON text
    monkeypatch.setattr(dashboard, "MAX_TAG_CHARS", 200)                            # too long: compressed
    packed = view_tag_value(grid)
    assert json.loads(packed)["state"].startswith("deflate;") and read_view(packed) == view_state(grid)
    assert read_view(None) is None and read_view("not json") is None


class RecordingClient:
    def __init__(self):
        self.tags = {}

    def set_experiment_tag(self, experiment_id, key, value):
        self.tags[key] = value


def test_the_view_is_rewritten_only_when_the_grid_changes(grid, tmp_path):
    client = RecordingClient()
    dashboard.write_view(client, "7", grid)
    first = client.tags[VIEW_TAG]
    client.tags.clear()
    dashboard.write_view(client, "7", grid, {VIEW_TAG: first})
    assert client.tags == {}                                                       # same grid: no write
    path = tmp_path / "dash.yaml"
    path.write_text(GRID.replace("shots: [0, 2]", "shots: [0]"))
    dashboard.write_view(client, "7", load_grid(path), {VIEW_TAG: first})
    rewritten = json.loads(client.tags[VIEW_TAG])
    assert "metrics.`view/score_pct/world_vqa/2shot`" not in read_view(client.tags[VIEW_TAG])["selectedColumns"]
    assert "metrics.`view/score_pct/world_vqa/0shot`" in read_view(client.tags[VIEW_TAG])["selectedColumns"]
    assert rewritten["createdAt"] == json.loads(first)["createdAt"]


def test_view_metrics_are_scores_in_percent_their_mean_and_the_wall_time_rounded():
    shown = view_metrics({"score/world_vqa/0shot": 0.19512, "score/world_textvqa/0shot": 0.3,
                          "score/world_vqa/0shot/colour": 0.9, "score/world_vqa_blind/0shot": 0.5,
                          "ci_low/world_vqa/0shot": 0.1, "wall_s": 75.6, "train/loss": 1.0})
    assert shown == {"view/score_pct/world_vqa/0shot": 19.5, "view/score_pct/world_textvqa/0shot": 30.0,
                     "view/score_pct/mean": 24.76, "view/wall_s": 76.0}   # no per-type, blind or other figure
    assert view_metrics({"train/loss": 1.0}) == {}


# four cells: the VQA-style score ties for three of them; the mean over every task x shots score decides
RUNS = {"a": (0.40, 0.10, 0.20, 0.20), "b": (0.40, 0.30, 0.30, 0.30), "c": (0.40, 0.20, 0.20, 0.20),
        "d": (0.30, 0.50, 0.50, 0.50)}
KEYS = ["score/world_vqa/0shot", "score/world_vqa/2shot", "score/world_textvqa/0shot", "score/world_textvqa/2shot"]


def _ordered(state: dict, runs: dict[str, dict]) -> list[str]:
    key = state["orderByKey"].split("`")[1]
    return sorted(runs, key=lambda name: runs[name][key], reverse=not state["orderByAsc"])


def test_the_view_sorts_by_the_mean_score_best_first(grid):
    runs = {name: view_metrics(dict(zip(KEYS, scores))) for name, scores in RUNS.items()}
    assert _ordered(view_state(grid), runs) == ["d", "b", "c", "a"]      # means 45, 32.5, 25, 22.5 %


@pytest.mark.slow
def test_mlflow_lists_the_runs_in_the_views_order(grid, workspace):
    """Runs logged through the store, listed by MLflow with the view's sort: the best mean score first."""
    from ablate.tracking.store import Store

    store = Store(workspace.tracking_uri, workspace.artifacts)
    experiment = store.experiment_id(grid)
    state = view_state(grid)
    names = {}
    for cell, (name, scores) in zip(grid.cells, RUNS.items()):
        logger = store.start_run(experiment, grid, cell)
        logger.log_metrics({KEYS[0]: scores[0], "wall_s": 61.4})
        logger.log_metrics(dict(zip(KEYS[1:], scores[1:])))   # a second call (as an evaluation again): all counted
        logger.finish()
        names[logger.run_id] = name
    key = state["orderByKey"].removeprefix("metrics.")
    listed = store.client.search_runs([experiment], state["searchFilter"],
                                      order_by=[f"metrics.{key} {'ASC' if state['orderByAsc'] else 'DESC'}"])
    assert [names[r.info.run_id] for r in listed] == ["d", "b", "c", "a"]
    assert listed[0].data.metrics["view/score_pct/mean"] == 45.0 and listed[0].data.metrics["view/wall_s"] == 61.0


def test_runs_url_opens_the_runs_table_on_the_view():
    url = runs_url("http://127.0.0.1:5001/", "12")
    assert url == ("http://127.0.0.1:5001/#/experiments/12/runs?workflowType=machine_learning"
                   f"&viewStateShareKey={VIEW_KEY}")
    assert "viewStateShareKey" not in runs_url("http://h", "12", view=False)


@pytest.mark.slow
def test_a_new_experiment_carries_the_view_and_runs_hint_prints_its_key(grid, workspace):
    from ablate.commands import runs_hint
    from ablate.tracking.store import Store

    store = Store(workspace.tracking_uri, workspace.artifacts)
    experiment = store.experiment_id(grid)
    state = read_view(store.client.get_experiment(experiment).tags[VIEW_TAG])
    assert state == view_state(grid)
    for cell in grid.cells[:2]:
        store.start_run(experiment, grid, cell).finish()
    report = workspace.home / "report.html"
    report.write_text("<html></html>")
    store.log_report(experiment, grid.name, [report], "the report")
    shown = store.client.search_runs([experiment], state["searchFilter"])          # what the view lists
    assert sorted(r.data.tags["ablate.cell_id"] for r in shown) == sorted(c.id for c in grid.cells[:2])

    store.client.delete_experiment_tag(experiment, VIEW_TAG)                       # a store made before views
    hint = runs_hint(grid, workspace, port=5123)
    assert hint.endswith(runs_url("http://127.0.0.1:5123", experiment))
    assert f"viewStateShareKey={VIEW_KEY}" in hint
    assert read_view(store.client.get_experiment(experiment).tags[VIEW_TAG]) == state


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str | None:
    """The command line of a running process (None once it has exited or is a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return None if state == "Z" else Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_stopping_ablate_ui_stops_the_mlflow_server_and_its_workers(workspace, how):
    from ablate.tracking.store import Store

    Store(workspace.tracking_uri, workspace.artifacts)   # `ablate ui` serves a store that exists
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"}   # its job runner's processes too
    ui = subprocess.Popen([sys.executable, "-m", "ablate.cli", "--home", str(workspace.home), "ui",
                           "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          start_new_session=True, env=env)
    started: dict[int, str] = {}                        # pid -> command line: a pid reused later is not ours

    def look() -> None:
        for pid in _descendants(ui.pid):
            started.setdefault(pid, _cmdline(pid))

    def ours() -> list[str]:
        return [line for pid, line in started.items() if line is not None and _cmdline(pid) == line]

    try:
        deadline = time.monotonic() + 240
        while True:
            look()
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert ui.poll() is None and time.monotonic() < deadline, ui.stdout.read().decode()[-3000:]
            time.sleep(0.5)
        time.sleep(3)                                   # the job runner's consumers start after the server
        look()
        assert "uvicorn" in " ".join(ours()) and "huey" in " ".join(ours())   # the workers this test is about
        os.kill(ui.pid, how)                            # to `ablate` alone, as `kill PID` or a lone Ctrl-C does
        out, _ = ui.communicate(timeout=STOP_GRACE_S + 60)
        assert ui.returncode == 0, out.decode()[-3000:]
        assert f"stopping the MLflow UI ({'SIGTERM' if how == signal.SIGTERM else 'Ctrl-C'})" in out.decode()
        time.sleep(0.5)                                 # orphans are reaped by init
        assert ours() == []
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
        for pid, line in started.items():
            if line is not None and _cmdline(pid) == line:
                os.kill(pid, signal.SIGKILL)
