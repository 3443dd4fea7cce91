"""`ablate ui`: the MLflow UI server on a store, stopped with every process it started."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

STOP_GRACE_S = 10                           # a stopped server's processes get this long before SIGKILL


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
