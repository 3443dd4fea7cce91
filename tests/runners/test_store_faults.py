"""The store under faults: created by several processes at once, half-created, unwritable, a hostile grid name."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlparse

import pytest

from ablate.runners.protocol import Terminated, sigterm_raises
from ablate.tracking import store as store_module
from ablate.tracking.store import RunLogger, Store, StoreError, sqlite_path

# One process of the race: imports first (slow), says it is ready, waits for the start file, then opens the store,
# makes the grid's experiment and a finished run in it.
OPENER = """
import sys, time
from pathlib import Path
from types import SimpleNamespace
from ablate.tracking.store import Store
uri, ready, go, artifacts = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
ready.write_text("ready")
while not go.exists():
    time.sleep(0.005)
store = Store(uri, artifacts)
experiment = store.experiment_id(SimpleNamespace(name="race", path="race.yaml", description="", cells=[], axes=[]))
run = store.client.create_run(experiment)
store.client.set_terminated(run.info.run_id, "FINISHED")
print(experiment)
"""


def grid(name: str = "tiny"):
    return SimpleNamespace(name=name, path=f"{name}.yaml", description="", cells=[], axes=[])


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_several_processes_creating_one_store_at_once_all_succeed(tmp_path, attempt):
    home = tmp_path / f"home{attempt}"
    uri = f"sqlite:///{home / 'mlflow.db'}"
    go = tmp_path / f"go{attempt}"
    procs, readies = [], []
    for i in range(3):
        ready = tmp_path / f"ready{attempt}-{i}"
        readies.append(ready)
        procs.append(subprocess.Popen([sys.executable, "-c", OPENER, uri, str(ready), str(go), str(home / "art")],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 300
    while not all(r.exists() for r in readies):          # all imported: now they open the store at one moment
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "an opener did not start"
        time.sleep(0.05)
    go.write_text("go")
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1        # one experiment, found or made by each
    store = Store(uri, home / "art")                             # and the store works after
    experiment = store.experiment_id(grid("race"), create=False)
    assert [r.status for r in store.runs(experiment)] == ["FINISHED"] * 3
    assert not list(home.glob("mlflow.db.broken-*"))              # nothing had to be repaired


@pytest.mark.slow
def test_a_half_created_store_is_made_again_with_a_warning(tmp_path, caplog):
    db = tmp_path / "home" / "mlflow.db"
    db.parent.mkdir()
    con = sqlite3.connect(db)       # what a crash in MLflow's schema set-up leaves: alembic's temporary table
    con.execute("CREATE TABLE _alembic_tmp_tags (key VARCHAR(250))")
    con.commit()
    con.close()
    store = Store(f"sqlite:///{db}", tmp_path / "home" / "art")
    assert "half-created" in caplog.text and str(db) in caplog.text
    experiment = store.experiment_id(grid())
    assert store.runs(experiment) == []
    assert len(list(db.parent.glob("mlflow.db.broken-*"))) == 1   # set aside, not deleted


@pytest.mark.slow
def test_a_store_mlflow_cannot_open_is_made_again_only_when_it_holds_no_runs(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    real, calls = store_module._open_client, []

    def fails_once(tracking_uri):
        calls.append(tracking_uri)
        if len(calls) == 1:
            raise RuntimeError("table _alembic_tmp_tags already exists")
        return real(tracking_uri)

    monkeypatch.setattr(store_module, "_open_client", fails_once)
    store = Store(uri, tmp_path / "art")                          # empty: set aside and made again
    assert len(calls) == 2 and len(list(tmp_path.glob("mlflow.db.broken-*"))) == 1
    store.client.create_run(store.experiment_id(grid()))

    calls.clear()                                                 # now it holds a run: left alone, one clear line
    with pytest.raises(StoreError, match="holds runs, so it was left as it is") as err:
        Store(uri, tmp_path / "art")
    assert "\n" not in str(err.value) and uri in str(err.value)
    assert len(list(tmp_path.glob("mlflow.db.broken-*"))) == 1


def test_a_store_that_cannot_be_opened_is_one_line_at_once(tmp_path, monkeypatch):
    opened = []    # MLflow's client retries for ~13 s, printing each try: the probe must refuse before it is made
    monkeypatch.setattr(store_module, "_open_client", lambda *a, **k: opened.append(a))
    (tmp_path / "file").write_text("a file where the store's folder should be")
    with pytest.raises(StoreError, match="cannot write the tracking store: cannot create") as err:
        Store(f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}", tmp_path / "art")
    (tmp_path / "dir.db").mkdir()                                 # a folder where the database file should be
    with pytest.raises(StoreError, match="cannot write the tracking store: cannot open") as err2:
        Store(f"sqlite:///{tmp_path / 'dir.db'}", tmp_path / "art")
    assert opened == []
    assert "\n" not in str(err.value) + str(err2.value)


@pytest.mark.slow
@pytest.mark.parametrize("name, folder", [("../../etc", "etc"), ("/tmp/evil", "tmp-evil"), ("..", "grid"),
                                          ("a/../../b", "a-..-..-b")])
def test_a_grid_name_never_puts_artifacts_outside_the_artifact_root(tmp_path, name, folder):
    root = tmp_path / "home" / "art"
    store = Store(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}", root)
    experiment = store.experiment_id(grid(name))
    location = store.client.get_experiment(experiment).artifact_location
    assert location == (root / folder).resolve().as_uri()
    run = store.client.create_run(experiment)
    store.client.log_dict(run.info.run_id, {"x": 1}, "x.json")
    written = [p for p in tmp_path.rglob("x.json")]
    assert len(written) == 1 and written[0].resolve().is_relative_to(root.resolve())


def test_sqlite_path_reads_absolute_and_relative_uris(tmp_path):
    assert sqlite_path(f"sqlite:///{tmp_path}/a.db") == tmp_path / "a.db"
    assert sqlite_path("sqlite:///rel/a.db") == Path("rel/a.db")
    assert sqlite_path("http://127.0.0.1:5000") is None and sqlite_path("sqlite:///:memory:") is None


@pytest.mark.slow
def test_a_moved_workspace_keeps_its_artifacts_and_writes_new_ones_inside_it(tmp_path):
    import shutil

    before = tmp_path / "before" / ".ablate"
    store = Store(f"sqlite:///{before / 'mlflow.db'}", before / "mlartifacts")
    experiment = store.experiment_id(grid())
    run = store.client.create_run(experiment).info.run_id
    store.client.log_dict(run, {"x": 1}, "x.json")

    after = tmp_path / "after" / ".ablate"
    after.parent.mkdir()
    shutil.move(before, after)
    moved = Store(f"sqlite:///{after / 'mlflow.db'}", after / "mlartifacts")
    assert moved.client.get_experiment(experiment).artifact_location == (after / "mlartifacts" / "tiny").as_uri()
    uri = moved.client.get_run(run).info.artifact_uri
    assert uri.startswith((after / "mlartifacts" / "tiny").as_uri())
    assert json.loads((Path(unquote(urlparse(uri).path)) / "x.json").read_text()) == {"x": 1}
    assert {a.path for a in moved.client.list_artifacts(run)} == {"x.json"}
    second = moved.client.create_run(experiment).info.run_id
    moved.client.log_dict(second, {"y": 2}, "y.json")
    assert [p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*.json")] == ["after", "after"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_a_store_call_takes_effect_after_it_and_the_run_closes_as_killed(sig, tmp_path):
    # before: Ctrl-C raised inside SQLAlchemy left an SQLite write lock held by a frame the exception kept alive;
    # closing the run as KILLED then failed ("database is locked") and the run stayed RUNNING
    store = Store(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    experiment = store.experiment_id(grid())
    run_id = store.client.create_run(experiment).info.run_id
    logger = RunLogger(store.client, run_id)
    inner = store.client._client
    real_log_batch = inner.log_batch
    calls = []

    def interrupted_log_batch(*args, **kwargs):
        os.kill(os.getpid(), sig)          # the signal arrives in the middle of the call
        calls.append("interrupted")
        real_log_batch(*args, **kwargs)    # the write still happens whole
        calls.append("written")

    inner.log_batch = interrupted_log_batch
    with sigterm_raises():
        with pytest.raises(KeyboardInterrupt if sig == signal.SIGINT else Terminated):
            logger.log_metrics({"train/loss": 1.5}, step=3)
    assert calls == ["interrupted", "written"]            # raised after the call, not inside it
    inner.log_batch = real_log_batch
    logger.finish("KILLED", "interrupted (Ctrl-C)")
    closed = store.client.get_run(run_id)
    assert closed.info.status == "KILLED"
    assert [(m.step, m.value) for m in store.client.get_metric_history(run_id, "train/loss")] == [(3, 1.5)]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # the handlers are given back
