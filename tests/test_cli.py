"""The command line: every argument documented with its default, --version, global options after the command,
and `ablate --help` without the heavy imports."""
from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata

import pytest

from ablate import cli

GLOBAL = ("--home", "--tracking-uri", "--reports", "--verbose")


def all_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) for the top-level parser and every subcommand, nested ones included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_parsers(sub, (*path, name))


def documented(parser: argparse.ArgumentParser):
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))]


def test_every_command_and_argument_has_help_that_states_its_default():
    parsers = dict(all_parsers(cli._parser()))
    commands = {("run",), ("report",), ("ls",), ("ui",), ("zoo",), ("zoo", "build"), ("zoo", "ls"), ("tune",)}
    assert commands <= set(parsers)
    for path, parser in parsers.items():
        for action in documented(parser):
            name = "/".join((*path, action.dest))
            assert action.help, f"{name} has no help"
            if not action.option_strings and action.nargs is None:   # a required positional (GRID)
                assert "required" in action.help, name
                continue
            assert "default" in action.help, f"{name}: help does not state the default: {action.help!r}"
            if action.default not in (None, False, argparse.SUPPRESS):
                assert str(action.default) in action.help, f"{name}: default {action.default!r} not in its help"


def test_help_text_of_each_command_shows_defaults():
    text = cli._parser().format_help()
    assert "(default: $ABLATE_HOME, else ./.ablate)" in text and "COMMAND" in text
    run_help = dict(all_parsers(cli._parser()))[("run",)].format_help()
    for option in ("GRID", "--runner", "--dry-run", "--no-report", *GLOBAL):
        assert option in run_help
    assert "(default: 5000)" in dict(all_parsers(cli._parser()))[("ui",)].format_help()


@pytest.mark.parametrize("argv, home, verbose", [
    (["run", "g.yaml"], None, False),
    (["--home", "A", "run", "g.yaml"], "A", False),
    (["run", "g.yaml", "--home", "B", "-v"], "B", True),
    (["-v", "--home", "A", "run", "g.yaml", "--home", "B"], "B", True),   # the later one wins
])
def test_global_options_before_or_after_the_command(argv, home, verbose):
    args = cli._parser().parse_args(argv)
    assert (args.command, args.grid, args.home, args.verbose) == ("run", "g.yaml", home, verbose)


def test_global_options_after_nested_and_grid_commands():
    parser = cli._parser()
    args = parser.parse_args(["zoo", "build", "zoo:lm-s", "--home", "Z", "--tracking-uri", "http://h:5000"])
    assert (args.zoo_command, args.names, args.home, args.tracking_uri) == ("build", ["zoo:lm-s"], "Z", "http://h:5000")
    args = parser.parse_args(["--reports", "R1", "ls", "g.yaml", "--reports", "R2"])
    assert args.reports == "R2" and args.home is None
    args = parser.parse_args(["ui", "--port", "5001", "--home", "H"])
    assert (args.port, args.home) == (5001, "H")
    assert parser.parse_args(["ui"]).port == 5000


def test_main_hands_options_given_after_the_command_to_the_command(monkeypatch):
    from ablate import commands

    seen = {}
    monkeypatch.setattr(commands, "dispatch", lambda args: seen.update(vars(args)) or 0)
    assert cli.main(["run", "g.yaml", "--dry-run", "--home", "H", "--reports", "R"]) == 0
    assert (seen["home"], seen["reports"], seen["dry_run"], seen["tracking_uri"]) == ("H", "R", True, None)


def test_unknown_option_and_missing_grid_exit_2(capsys):
    with pytest.raises(SystemExit) as err:
        cli._parser().parse_args(["run"])
    assert err.value.code == 2
    assert "GRID" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        cli._parser().parse_args(["ls", "g.yaml", "--no-such-option"])
    assert err.value.code == 2
    assert "--no-such-option" in capsys.readouterr().err


def test_version_names_the_installed_package():
    out = subprocess.run([sys.executable, "-m", "ablate.cli", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"ablate {metadata.version('ablate')} (torch {metadata.version('torch')}, ")


def test_help_imports_no_heavy_library():
    code = ("import sys\nfrom ablate import cli\n"
            "for argv in (['--help'], ['run', '--help'], ['zoo', 'build', '--help'], ['--version']):\n"
            "    try:\n        cli.main(argv)\n    except SystemExit as e:\n        assert e.code == 0, argv\n"
            "heavy = ('torch', 'transformers', 'mlflow', 'lmms_eval', 'pandas')\n"
            "heavy = sorted(m for m in heavy if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_multigpu_slot_says_processes_without_gpus():
    from ablate.runners.config import multigpu_slot_name

    assert multigpu_slot_name(2, gpu_count=0) == "2 processes (no GPU)"
    assert multigpu_slot_name(1, gpu_count=0) == "1 process (no GPU)"
    assert multigpu_slot_name(2, gpu_count=2) == "2 GPUs"
