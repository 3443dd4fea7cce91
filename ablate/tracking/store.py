"""The tracking store (MLflow): one experiment per grid, one run per cell. The one source of truth.

Tags on every run: `ablate.grid`, `ablate.cell_id`, `ablate.axis.<key>` (the label of each swept value).
Params: the cell config, flattened. Metrics: `train/loss` per step, `score/<task>/<k>shot` and their CIs.
A finished cell is a run with status FINISHED; resume skips it. A run left RUNNING by a killed process is closed as
KILLED before its cell runs again, so the store never holds two finished runs of one cell.

A local store (`sqlite:///...`) is opened under a file lock next to it (`<db>.lock`): MLflow's schema set-up is not
safe when two processes create one store at once. A store whose creation was cut short (it holds no runs) is set
aside and created again; one that cannot be opened or written raises `StoreError`, one line, no MLflow traceback.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from filelock import FileLock, Timeout

from ablate.tracking.dashboard import VIEW_TAG, view_metrics, view_tag_value, write_view
from ablate.tracking.tags import AXIS_TAG, CELL_TAG, GRID_TAG, REASON_TAG, REPORT_TAG, config_params

if TYPE_CHECKING:
    from ablate.config.grid import Cell, Grid

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# A tracking server that is down: MLflow's defaults retry each call 7 times with a doubling backoff (over 4 minutes)
# and wait 120 s per try. Here a call gives up after 3 retries (1 + 2 + 4 s) and 30 s per try; a team's
# rate-limited server can set these variables higher.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 300        # how long to wait for another process that is creating (or repairing) the store
SERVER_CHECK_S = 5          # how long the first look at a tracking server waits for it to answer


class StoreError(RuntimeError):
    """The tracking store or the workspace cannot be written (read-only, full disk, server down, damaged).

    The message is one line a user can act on: where, what went wrong, what to do."""

    def __init__(self, where: str | Path, message: str):
        self.where = str(where)
        super().__init__(f"{where}: {message.rstrip('.')}.")


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    cell_id: str
    status: str            # FINISHED / FAILED / RUNNING / KILLED
    start_time: int
    end_time: int | None
    metrics: dict
    tags: dict
    params: dict


class Store:
    def __init__(self, tracking_uri: str, artifact_root: Path):
        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root)
        db = sqlite_path(tracking_uri)
        import mlflow.tracking  # noqa: F401 - ~2 s: only when a store is used; first, as it sets up its loggers

        if db is None and served(tracking_uri):
            check_server(tracking_uri)
            # urllib3 logs each retry of a call as a warning; a call that fails for good raises (a StoreError)
            logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        with quiet_mlflow():
            # an HTTP call holds no lock here that an interrupt could leave held: Ctrl-C and SIGTERM act at once
            self.client = WholeCalls(_open_client(tracking_uri) if db is None else
                                     _open_sqlite(tracking_uri, db, self.artifact_root), hold_signals=db is not None)

    # ---- experiments and runs ----
    def experiment_id(self, grid: "Grid", create: bool = True) -> str | None:
        found = self.client.get_experiment_by_name(grid.name)
        if found is not None:
            if create:   # the runs table's first view (tracking/dashboard.py), kept in step with the grid file
                write_view(self.client, found.experiment_id, grid, found.tags)
            return found.experiment_id
        if not create:
            return None
        served = self.tracking_uri.startswith(("http://", "https://"))   # a team's `mlflow server` keeps artifacts
        if not served:
            self.artifact_root.mkdir(parents=True, exist_ok=True)
        try:
            return self.client.create_experiment(
                grid.name, artifact_location=None if served else self.artifact_folder(grid.name).as_uri(),
                tags={"ablate.grid_file": str(grid.path), "mlflow.note.content": grid.description,
                      VIEW_TAG: view_tag_value(grid)})
        except Exception:   # another process created it between our look and our create
            found = self.client.get_experiment_by_name(grid.name)
            if found is None:
                raise
            return found.experiment_id

    def artifact_folder(self, name: str) -> Path:
        """The experiment's artifact folder: always a plain folder inside the artifact root, whatever the name
        (a grid named `../../etc` or `/tmp/x` writes under `<root>/etc`, `<root>/tmp-x`)."""
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "grid"
        folder = (self.artifact_root / safe).resolve()
        if folder.parent != self.artifact_root.resolve():   # cannot happen with the characters kept above
            raise StoreError(self.tracking_uri, f"grid name {name!r} does not make a folder name")
        return folder

    def check_writable(self) -> None:
        """Raise (sqlite3.OperationalError) when a local store cannot be written; a no-op for a server."""
        db = sqlite_path(self.tracking_uri)
        if db is not None:
            _probe_sqlite(db, write=True)

    def runs(self, experiment_id: str) -> list[RunRecord]:
        records, token = [], None
        while True:
            page = self.client.search_runs([experiment_id], max_results=1000, page_token=token)
            for run in page:
                records.append(RunRecord(run.info.run_id, run.data.tags.get(CELL_TAG, ""), run.info.status,
                                         run.info.start_time, run.info.end_time, dict(run.data.metrics),
                                         dict(run.data.tags), dict(run.data.params)))
            token = page.token
            if not token:
                return records

    def finished_cells(self, experiment_id: str) -> set[str]:
        return {r.cell_id for r in self.runs(experiment_id) if r.status == "FINISHED"}

    def close_stale(self, experiment_id: str, cell_id: str) -> list[str]:
        """Close runs of a cell left RUNNING by a process that died (the caller holds the cell's claim)."""
        return self.close_running(experiment_id, cell_id, "KILLED",
                                  "process ended without closing the run (killed)")

    def close_running(self, experiment_id: str, cell_id: str, status: str, reason: str) -> list[str]:
        """Close the cell's runs that are still RUNNING with `status` and `reason`; their ids."""
        closed = []
        for record in self.runs(experiment_id):
            if record.cell_id == cell_id and record.status == "RUNNING":
                self.client.set_tag(record.run_id, REASON_TAG, reason[:4000])
                self.client.set_terminated(record.run_id, status)
                closed.append(record.run_id)
        return closed

    def start_run(self, experiment_id: str, grid: "Grid", cell: "Cell") -> "RunLogger":
        tags = {CELL_TAG: cell.id, GRID_TAG: grid.name, "mlflow.runName": cell.label() or cell.id,
                "mlflow.note.content": _cell_note(grid, cell)}
        tags.update({AXIS_TAG + k: str(v) for k, v in cell.axes.items()})
        run = self.client.create_run(experiment_id, tags=tags, run_name=cell.label() or cell.id)
        logger = RunLogger(self.client, run.info.run_id)
        logger.log_params(config_params(cell.config.model_dump(mode="json")))
        logger.log_dict(json.loads(cell.config.canonical_json()), "cell_config.json")
        return logger

    def loss_curve(self, run_id: str, key: str = "train/loss") -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]

    def log_report(self, experiment_id: str, grid_name: str, files: list[Path], note: str) -> str:
        """Put a grid's report files on the experiment's report run (one per experiment, made on first use, tag
        `ablate.kind = report`), so the MLflow UI shows the report next to the cells' runs; the run's id."""
        runs = self.client.search_runs([experiment_id], filter_string=f"tags.`{REPORT_TAG}` = 'report'",
                                       max_results=1)
        run_id = runs[0].info.run_id if runs else self.client.create_run(
            experiment_id, run_name=f"report: {grid_name}", tags={REPORT_TAG: "report"}).info.run_id
        self.client.set_tag(run_id, "mlflow.note.content", note)
        for path in files:
            self.client.log_artifact(run_id, str(path))
        if not runs:
            self.client.set_terminated(run_id, "FINISHED")
        return run_id


def served(tracking_uri: str) -> bool:
    """Whether the store is a tracking server (`mlflow server`) reached over HTTP."""
    return tracking_uri.startswith(("http://", "https://"))


def check_server(tracking_uri: str, timeout_s: float = SERVER_CHECK_S) -> None:
    """Raise `StoreError` (one line) at once when a tracking server does not answer: one request, `timeout_s`, no
    retries (MLflow's client would retry each call). Any HTTP answer, an error status included, means it is up."""
    import requests  # lazy: MLflow's HTTP client, only for a served store

    url = tracking_uri.rstrip("/") + "/health"
    try:
        requests.get(url, timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as err:
        raise StoreError(tracking_uri, f"cannot reach the tracking server ({_one_line(_root(err))}); check that it "
                         "is up and the address is right (--tracking-uri, MLFLOW_TRACKING_URI)") from None


def _root(err: BaseException) -> BaseException:
    """The innermost cause of an error (requests wraps urllib3's, which wraps the socket's)."""
    while err.__cause__ is not None or (err.__context__ is not None and not err.__suppress_context__):
        err = err.__cause__ or err.__context__
    return err


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///` store; None for anything else (a server, another database)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = unquote(tracking_uri.removeprefix("sqlite:///").split("?")[0])
    return None if path in ("", ":memory:") else Path(path)


@contextmanager
def quiet_mlflow():
    """Hold back MLflow's own log lines (retry warnings, tracebacks) while a store opens: a failure is reported
    once, as a StoreError."""
    with _QUIET["lock"]:   # threads (the workers' parent) nest: the first one in saves the levels, the last restores
        if not _QUIET["depth"]:
            loggers = [logging.getLogger(name) for name in ("mlflow", "alembic", "sqlalchemy", "urllib3")]
            _QUIET["levels"] = [(logger, logger.level) for logger in loggers]
            for logger in loggers:
                logger.setLevel(logging.CRITICAL + 1)
        _QUIET["depth"] += 1
    try:
        yield
    finally:
        with _QUIET["lock"]:
            _QUIET["depth"] -= 1
            if not _QUIET["depth"]:
                for logger, level in _QUIET["levels"]:
                    logger.setLevel(level)


_QUIET: dict = {"lock": threading.Lock(), "depth": 0, "levels": []}


class WholeCalls:
    """The MLflow client, each call made whole: Ctrl-C or SIGTERM during a call takes effect when it returns (a local
store's; a server's client is left as it is: `hold_signals=False`).

    Raised inside SQLAlchemy, the interrupt left an SQLite transaction open in a frame that the exception kept alive,
    so the write lock stayed held: closing the run as KILLED then failed with "database is locked" and the run stayed
    RUNNING (6 runs in 60 interrupted at random times while logging), and other processes waited on the lock
    meanwhile."""

    def __init__(self, client, hold_signals: bool = True):
        self._client, self._hold = client, hold_signals

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr) or not self._hold:   # a server's client: an interrupt may end a request at once
            return attr

        @functools.wraps(attr)
        def whole(*args, **kwargs):
            with signals_held():
                return attr(*args, **kwargs)
        return whole


@contextmanager
def signals_held():
    """Hold Ctrl-C and SIGTERM for the duration (main thread only; elsewhere a no-op), then act on the first one
    as the handler in place before would have: raise KeyboardInterrupt (or Terminated), or end the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: held.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if held:
            handler = previous[held[0]]
            if callable(handler):
                handler(held[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(held[0])


def _open_client(tracking_uri: str):
    from mlflow.tracking import MlflowClient  # mlflow costs ~2 s to import: only when a store is used

    return MlflowClient(tracking_uri=tracking_uri)   # builds (and for a database, sets up) the store


def _open_sqlite(tracking_uri: str, db: Path, artifact_root: Path):
    """Open (create, repair or relocate) a local store under its lock; StoreError, one line, when it cannot be."""
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{db}.lock", timeout=OPEN_TIMEOUT_S)
        lock.acquire()
    except Timeout:
        raise StoreError(tracking_uri, f"another process has held {db}.lock for {OPEN_TIMEOUT_S} s while "
                         "creating the store; if none is running, delete the lock file") from None
    except OSError as err:
        raise StoreError(tracking_uri, f"cannot write the tracking store: cannot create {db.parent} or "
                         f"{db.name}.lock ({_one_line(err)}); check free disk space and permissions") from err
    try:
        try:
            _probe_sqlite(db, write=False)    # fails in ms where MLflow retries for ~13 s, printing each try
            state = _inspect_sqlite(db)
        except sqlite3.Error as err:
            raise StoreError(tracking_uri, f"cannot write the tracking store: cannot open {db} ({_one_line(err)}); "
                             "check free disk space and permissions") from err
        if state["half_created"] and not state["used"]:
            _set_aside(db, "MLflow's schema set-up did not finish")
        elif state["used"]:
            try:
                _relocate(db, artifact_root)
            except sqlite3.Error as err:
                raise StoreError(tracking_uri, f"cannot write the tracking store: cannot update the artifact "
                                 f"folders of a moved store ({_one_line(err)}); check free disk space and "
                                 "permissions") from err
        try:
            return _open_client(tracking_uri)
        except Exception as err:  # noqa: BLE001 - MLflow raises many types; a half-created store is set aside below
            if _inspect_sqlite(db)["used"]:
                raise StoreError(tracking_uri, f"cannot open the store ({_one_line(err)}); it holds runs, so it was "
                                 f"left as it is: back it up, then try `mlflow db upgrade {tracking_uri}`") from err
            _set_aside(db, _one_line(err))
            _forget_engine(tracking_uri)
        try:
            return _open_client(tracking_uri)
        except Exception as err:  # noqa: BLE001
            raise StoreError(tracking_uri, f"cannot create the store ({_one_line(err)})") from err
    finally:
        lock.release()


def _probe_sqlite(db: Path, write: bool) -> None:
    """Open the database (creating the file if missing) and, with `write`, take its write lock for a moment."""
    con = sqlite3.connect(str(db), timeout=30)
    try:
        con.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
        if write:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
    finally:
        con.close()


def _inspect_sqlite(db: Path) -> dict:
    """`half_created`: MLflow's schema set-up was cut short (a crash, or two processes racing: `table
    _alembic_tmp_tags already exists` on every later open); `used`: it holds runs or experiments of its own."""
    con = sqlite3.connect(str(db), timeout=30)
    try:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = (con.execute("SELECT COUNT(*) FROM alembic_version").fetchone()[0]
                   if "alembic_version" in tables else 0)
        runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
        experiments = (con.execute("SELECT COUNT(*) FROM experiments WHERE name != 'Default'").fetchone()[0]
                       if "experiments" in tables else 0)
    finally:
        con.close()
    half = any(t.startswith("_alembic_tmp_") for t in tables) or bool(tables and not version)
    return {"half_created": half, "used": bool(runs or experiments)}


def _set_aside(db: Path, why: str) -> None:
    """Move an unused, half-created store to `<db>.broken-<time>` so that MLflow makes it again."""
    aside = db.with_name(f"{db.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    for suffix in ("", "-journal", "-wal", "-shm"):
        part = Path(f"{db}{suffix}")
        if part.exists():
            part.rename(f"{aside}{suffix}")
    log.warning("the store %s was half-created (%s) and held no runs: moved it to %s and made it again",
                db, why, aside)


def _relocate(db: Path, artifact_root: Path) -> None:
    """A workspace that was moved or copied (its home holds the database and `mlartifacts/`): point the artifact
    folders recorded in the database (absolute, as MLflow writes them) at the artifact root where the store is now.
    Only folders that ablate made (`<old home>/<artifact root's name>/<grid>`) are touched, and only when the
    database lives next to the artifact root, so two machines sharing a database never pull it to and fro."""
    root = artifact_root.resolve()
    if db.resolve().parent != root.parent:
        return
    con = sqlite3.connect(str(db), timeout=30)
    try:
        moved = []
        for experiment_id, location in con.execute("SELECT experiment_id, artifact_location FROM experiments"):
            if not (location or "").startswith("file://"):
                continue
            old = Path(unquote(location.removeprefix("file://")))
            if old.parent.name == root.name and old.parent != root:
                moved.append((experiment_id, location.rstrip("/"), (root / old.name).as_uri()))
        if not moved:
            return
        with con:
            for experiment_id, old_uri, new_uri in moved:
                con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                            (new_uri, experiment_id))
                con.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) WHERE experiment_id = ? "
                            "AND substr(artifact_uri, 1, ?) = ?",
                            (new_uri, len(old_uri) + 1, experiment_id, len(old_uri), old_uri))
    finally:
        con.close()
    log.info("the store %s was moved: artifact folders of %d experiments now under %s", db, len(moved), root)


def _forget_engine(tracking_uri: str) -> None:
    """MLflow keeps one engine per URI for the process; after the file was moved it would still point at it."""
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # lazy: mlflow, as above

        engine = SqlAlchemyStore._engine_map.pop(tracking_uri, None)
        if engine is not None:
            engine.dispose()
    except Exception:  # noqa: BLE001 - a private detail of MLflow: if it changed, there is nothing to forget
        pass


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


class RunLogger:
    """Logs to one run; step metrics are buffered and sent with log_batch (one call per flush)."""

    def __init__(self, client, run_id: str, flush_every: int = 25):
        self.client, self.run_id, self.flush_every = client, run_id, flush_every
        self._buffer: list = []

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param  # lazy: mlflow, as above

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_step(self, step: int, **values: float) -> None:
        from mlflow.entities import Metric  # lazy: mlflow, as above

        now = int(time.time() * 1000)
        self._buffer.extend(Metric(k, float(v), now, step) for k, v in values.items())
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []   # an interrupt after the call must not send it twice
            self.client.log_batch(self.run_id, metrics=batch)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """Log `metrics`; with a run's scores or wall time, also the saved view's copies of them
        (`dashboard.view_metrics`: % scores, their mean, the wall time rounded), from every score the run holds."""
        shown = view_metrics(metrics)
        if shown:
            shown = view_metrics({**self.client.get_run(self.run_id).data.metrics, **metrics})
        for key, value in {**metrics, **shown}.items():
            self.log_step(step, **{key: value})
        self.flush()

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_dict(self, data, name: str) -> None:
        self.client.log_dict(self.run_id, data, name)

    def log_table(self, rows: list[dict], name: str) -> None:
        import pandas as pd  # lazy: pandas only for results

        self.client.log_table(self.run_id, data=pd.DataFrame(rows), artifact_file=name)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def finish(self, status: str = "FINISHED", reason: str | None = None) -> None:
        self.flush()
        if reason:
            self.client.set_tag(self.run_id, REASON_TAG, reason[:4000])
        self.client.set_terminated(self.run_id, status)


def _cell_note(grid: "Grid", cell: "Cell") -> str:
    """The run's description in the MLflow UI: which cell of which grid, and where to look."""
    values = ", ".join(f"{k} = {v}" for k, v in cell.axes.items()) or "no swept axes"
    return (f"Cell {cell.id} of grid '{grid.name}' ({grid.path}): {values}. Params: the full cell config "
            "(also cell_config.json). Metrics: score/<task>/<k>shot in 0..1 with ci_low/ci_high (95% bootstrap) "
            "and n (questions); per question type score/<task>/<k>shot/<type>; text/perplexity (lower is "
            "better); encoder/* (the zoo encoder's pre-training); train/loss per step. Artifacts: "
            "predictions.json (a sample of questions with the model's answers). The grid's report is the run "
            "named 'report: <grid>'.")
