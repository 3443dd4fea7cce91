"""A team's store: `mlflow server` with a SQL backend on loopback; a grid runs against it, another client reads it."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from ablate.cli import main
from ablate.resolve import load_grid
from ablate.tracking.results import results_frame
from ablate.tracking.store import Store


@pytest.fixture
def mlflow_server(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{server_dir / 'mlflow.db'}",
         "--artifacts-destination", str(server_dir / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], cwd=server_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mlflow server did not start:\n{proc.stdout.read().decode()[-3000:]}")
            time.sleep(0.3)
        yield url, server_dir
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_grid_runs_against_a_team_mlflow_server(mlflow_server, make_grid, tmp_path, monkeypatch, capsys):
    url, server_dir = mlflow_server
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    grid_path = make_grid(axes="connector.name: [mlp]", steps=3)
    args = ["--home", str(tmp_path / "alice"), "--tracking-uri", url, "--reports", str(tmp_path / "reports")]
    assert main([*args, "run", str(grid_path), "--no-report"]) == 0
    assert not (tmp_path / "alice" / "mlflow.db").exists()               # nothing in the local sqlite store
    assert f"runs: {url}/#/experiments/" in capsys.readouterr().out        # the server's own UI, not `ablate ui`

    bob = Store(url, tmp_path / "bob")                                   # a teammate, another client
    grid = load_grid(grid_path)
    frame, curves = results_frame(bob, grid)
    assert list(frame["status"]) == ["FINISHED"]
    assert 0 <= frame["score/world_vqa/0shot"].iloc[0] <= 1
    assert [s for s, _ in curves[grid.cells[0].id]] == [1, 2, 3]
    experiment = bob.client.get_experiment_by_name(grid.name)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")    # artifacts kept by the server
    run_id = frame["run_id"].iloc[0]
    assert "cell_config.json" in {a.path for a in bob.client.list_artifacts(run_id)}
    assert list(server_dir.joinpath("artifacts").rglob("cell_config.json"))
    # a rerun against the server resumes: nothing runs twice
    assert main([*args, "run", str(grid_path), "--no-report"]) == 0
    assert len([r for r in bob.runs(experiment.experiment_id) if r.cell_id]) == 1
