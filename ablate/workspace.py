"""Where ablate keeps things on disk. One object, handed around; no global state.

Default: `.ablate/` in the current folder (override with `--home` or `ABLATE_HOME`):
  cache/          the embedded world and the zoo of tiny pretrained backbones (built once, reused)
  checkpoints/    per-cell checkpoints (resume) and final weights (self-describing)
  mlflow.db       the MLflow tracking store (sqlite); artifacts in mlartifacts/
Reports go to `reports/<grid name>/` unless told otherwise.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    home: Path
    tracking_uri: str
    reports: Path

    @classmethod
    def create(cls, home: str | Path | None = None, tracking_uri: str | None = None,
               reports: str | Path | None = None, make: bool = True) -> "Workspace":
        """The workspace; `make=False` creates nothing on disk (the commands that only read: ls, report, ui)."""
        home = Path(home or os.environ.get("ABLATE_HOME") or ".ablate").resolve()
        if make:
            home.mkdir(parents=True, exist_ok=True)
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
        return cls(home=home, tracking_uri=uri, reports=Path(reports or "reports").resolve())

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def artifacts(self) -> Path:
        return self.home / "mlartifacts"

    def checkpoints(self, cell_id: str) -> Path:
        return self.home / "checkpoints" / cell_id


def folder_problem(path: str | Path, write: bool = True) -> str | None:
    """Why `path` cannot be a folder ablate creates and writes into (a file, a device, a folder it may not write
    in, as `/proc/self/x`), or None; looked at without creating anything. `write=False` (a command that only
    reads): only a path that exists and is not a folder is a problem."""
    path = Path(path).expanduser().absolute()
    if path.exists():
        if not path.is_dir():
            return f"{path} exists and is not a folder"
        if not write or os.access(path, os.W_OK | os.X_OK):
            return None
        return f"{path} is a folder this user may not write in"
    if not write:   # nothing to read there: the command says there is no store yet
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{path} cannot be created: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{path} cannot be created: this user may not write in {parent}"
    return None
