"""Careless and hostile command lines: each is refused with exit code 2 and one line naming the option (or the grid
file), before anything is created, a dry run included; the commands that only read (ls, report, show, ui) create
nothing in a folder where nothing has run."""
from __future__ import annotations

from pathlib import Path

import pytest

from ablate.cli import main

GRID = Path(__file__).resolve().parents[1] / "grids" / "connectors.yaml"


def refused(tmp_path: Path, capsys, argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert err.startswith("error: ") and err.count("\n") == 1, err      # one line
    assert "Traceback" not in err and "set_int_max_str_digits" not in err
    return err


# name -> (argv after the program, written in the test's empty folder; what the line must name)
CASES = {
    "home is a file": (["--home", "a-file", "run", str(GRID), "--dry-run"], "--home: "),
    "home under /proc/self": (["--home", "/proc/self/x", "run", str(GRID), "--dry-run"], "--home: /proc/self/x"),
    "home is a file (ls)": (["--home", "a-file", "ls", str(GRID)], "--home: "),
    "reports is a file": (["--reports", "a-file", "run", str(GRID), "--dry-run"], "--reports: "),
    "max-cells 0": (["run", str(GRID), "--dry-run", "--max-cells", "0"], "--max-cells: 0"),
    "max-cells -1": (["run", str(GRID), "--dry-run", "--max-cells", "-1"], "--max-cells: -1"),
    "ui port 99999": (["ui", "--port", "99999"], "--port: 99999 is not a TCP port"),
    "ui port -1": (["ui", "--port", "-1"], "--port: -1 is not a TCP port"),
    "grid is a folder": (["run", str(GRID.parent), "--dry-run"], "is a folder, not a grid file"),
    "grid is a device": (["run", "/dev/zero", "--dry-run"], "/dev/zero: is not a regular file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_command_line_that_cannot_work_is_one_line_and_exit_2_and_creates_nothing(case, tmp_path, monkeypatch,
                                                                                     capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABLATE_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "a-file").write_text("not a folder")
    argv, named = CASES[case]
    err = refused(tmp_path, capsys, argv)
    assert named in err, err
    assert "not found" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"], "nothing may be created"


@pytest.mark.parametrize("command", ["report", "ui", "show"])
def test_reading_commands_in_an_empty_folder_create_nothing(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABLATE_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    argv = {"report": ["report", str(GRID)], "ui": ["ui"], "show": ["show", str(GRID), "0"]}[command]
    err = refused(tmp_path, capsys, argv)
    assert "there is no store here yet" in err and "ablate run GRID" in err
    assert list(tmp_path.iterdir()) == []


def test_ls_in_an_empty_folder_lists_the_cells_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABLATE_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["ls", str(GRID)]) == 0
    out = capsys.readouterr().out
    assert "no runs yet: there is no store at sqlite:///" in out and out.count("connector=") >= 2
    assert list(tmp_path.iterdir()) == []
