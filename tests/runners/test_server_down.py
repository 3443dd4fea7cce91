"""A tracking server that is down (connections refused, on 127.0.0.1 only): `ablate run` says so in one line and
exits 2 before anything starts; a server that goes down mid-grid leaves Ctrl-C and SIGTERM working during MLflow's
retries, and its retry warnings unprinted."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ablate.cli import main
from ablate.runners.protocol import END_WITHIN_S, EXIT_TERMINATED

GRID = Path(__file__).resolve().parents[2] / "grids" / "connectors.yaml"


def refusing_uri() -> str:
    """An address on this machine where nothing listens: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_server_that_is_down_is_one_line_and_exit_2_before_anything_runs(tmp_path, capsys):
    uri = refusing_uri()
    code = main(["--home", str(tmp_path / "home"), "--reports", str(tmp_path / "reports"), "--tracking-uri", uri,
                 "run", str(GRID), "--no-report"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"error: {uri}: cannot reach the tracking server"), err
    assert "Connection refused" in err and "Retrying" not in err
    assert not (tmp_path / "home" / "cache").exists()   # no asset was made: the check comes first


# A client whose server went down after the first look (the look is skipped): each MLflow call retries; SIGTERM
# must end it as `Terminated` (exit 143), not wait for the retries or the alarm.
CLIENT = """
import sys
from ablate.runners.protocol import Terminated, sigterm_raises
from ablate.tracking import store
store.check_server = lambda uri, timeout_s=0: None
client = store.Store(sys.argv[1], sys.argv[2]).client
print("calling", flush=True)
try:
    with sigterm_raises():
        client.search_experiments()
except Terminated:
    sys.exit(143)
sys.exit(0)
"""


@pytest.mark.slow
def test_sigterm_during_the_retries_of_a_server_that_refuses_connections_ends_the_call(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CLIENT), refusing_uri(), str(tmp_path / "art")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "7",   # MLflow's default: minutes
                                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2"})
    assert proc.stdout.readline().strip() == "calling"
    try:
        proc.wait(timeout=2)     # still retrying: the call has not given up
    except subprocess.TimeoutExpired:
        pass
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=END_WITHIN_S)   # the bound docs/runners.md promises after SIGTERM
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("SIGTERM was held while MLflow retried") from None
    err = proc.stderr.read()
    assert code == EXIT_TERMINATED, err     # ended by Terminated, not by the alarm (SIGALRM) nor by giving up
    assert "Retrying" not in err, err       # urllib3's retry warnings are not printed
