"""`ablate` command line: run / eval / report / ls / zoo / ui / tune. Heavy imports happen inside the commands."""
from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import signal
import sys
from importlib import metadata

from ablate.config.errors import GridError
from ablate.runners.protocol import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, sigterm_raises

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# per-load bars of transformers / datasets: noise in a grid log
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # lmms-eval's per-task bars: ablate shows its own progress
# OpenMP threads that wait by sleeping, not spinning (read when torch loads, later): on a CPU that other work shares,
# spinning threads made a training step 4-10x slower (docs/performance.md, "Threads on a shared CPU")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _global_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--home, --tracking-uri, --reports, -v: accepted before the command (`ablate --home X run G`) and after it
    (`ablate run G --home X`). After the command they default to SUPPRESS, so a value given before is kept
    unless the same option is given again after (the later one wins)."""
    group = parser.add_argument_group("global options (before or after the command)")
    kw = {} if defaults else {"default": argparse.SUPPRESS}
    group.add_argument("--home", metavar="DIR", **kw,
                       help="where ablate keeps caches, checkpoints and the MLflow store "
                            "(default: $ABLATE_HOME, else ./.ablate)")
    group.add_argument("--tracking-uri", metavar="URI", **kw,
                       help="MLflow tracking URI, e.g. http://host:5000 for a team's mlflow server "
                            "(default: $MLFLOW_TRACKING_URI, else sqlite:///<home>/mlflow.db)")
    group.add_argument("--reports", metavar="DIR", **kw,
                       help="folder for reports; a grid's report goes to <reports>/<grid name>/ "
                            "(default: ./reports)")
    group.add_argument("-v", "--verbose", action="store_true", **kw,
                       help="log every module's INFO messages with timestamps (default: warnings only)")


def grid_run_options(cmd: argparse.ArgumentParser, dry_run: str) -> None:
    """What `run` and `eval` share: a dry run, the report at the end, the cap on a grid's size."""
    cmd.add_argument("--dry-run", action="store_true", help=dry_run)
    cmd.add_argument("--no-report", action="store_true",
                     help="do not write the report at the end (default: off, the report is written)")
    cmd.add_argument("--max-cells", type=int, metavar="N",
                     help="accept a grid of up to N cells "
                          "(default: 1000; a bigger grid is refused as a likely mistake)")


def _version() -> str:
    """ablate's version and the libraries that decide its results, read from package metadata (no imports)."""
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    libs = ", ".join(f"{name} {version(name)}" for name in ("torch", "transformers", "lmms-eval", "mlflow"))
    return f"ablate {version('ablate')} ({libs}; Python {sys.version.split()[0]})"


class _Parser(argparse.ArgumentParser):
    """argparse that answers a mistyped command (or any other choice) with the closest one: "did you mean 'run'?"
    (difflib, as Python 3.14's `suggest_on_error` does; subcommand parsers are made of the same class)."""

    def error(self, message: str):
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found and "meant" not in message:
            choices = re.findall(r"'([^']*)'", found.group(2)) or [c.strip() for c in found.group(2).split(",")]
            close = difflib.get_close_matches(found.group(1), choices, n=1, cutoff=0.5)
            if close:
                message += f"; did you mean '{close[0]}'?"
        super().error(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ablate", description="MM1-style ablations of multimodal LLMs: sweep a grid, train, evaluate,\n"
                                   "track in MLflow, compare in a report.",
        epilog="examples:\n  ablate run grids/connectors.yaml\n  ablate run grids/connectors.yaml --dry-run\n"
               "  ablate ls grids/connectors.yaml --home /data/ablate\n  ablate ui --port 5001\n"
               "'ablate COMMAND --help' gives a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version(),
                        help="print ablate's version and those of torch, transformers, lmms-eval, mlflow, then exit")
    _global_options(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent, name: str, text: str) -> argparse.ArgumentParser:
        cmd = parent.add_parser(name, help=text, description=text)
        _global_options(cmd, defaults=False)
        return cmd

    def grid_argument(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("grid", metavar="GRID", help="grid file (YAML), e.g. grids/connectors.yaml (required)")

    run = command(sub, "run", "validate the grid, run the cells that are not finished, write the report")
    grid_argument(run)
    run.add_argument("--runner", metavar="FILE",
                     help="runner file, e.g. runners/subprocess.yaml or runners/workers.yaml "
                          "(default: a `workers` runner with its defaults: one worker per GPU, or per CPU core without "
                          "a GPU, each with a process of its own that runs its cells one after another, the dearest "
                          "first; runners/local.yaml: in this process)")
    grid_run_options(run, dry_run="validate the grid and list its cells, run nothing (default: off)")

    evaluate = command(sub, "eval", "evaluate the finished cells on what they have not been evaluated on (new "
                                    "tasks, shot counts, limits, prompts) from their final checkpoints; train "
                                    "nothing, then write the report")
    grid_argument(evaluate)
    grid_run_options(evaluate, dry_run="validate the grid (custom task files included) and list its cells "
                                       "(default: off)")

    for name, text in (("report", "re-render tables, plots and the PDF from the tracking store"),
                       ("ls", "list the cells and their state in the store")):
        grid_argument(command(sub, name, text))

    show = command(sub, "show", "print a cell's run record: library versions, git commit, machine (CPU, GPU, "
                                "threads), fingerprints of its data and question files, its prompts as rendered, "
                                "its resolved config")
    grid_argument(show)
    show.add_argument("cell", metavar="CELL", help="the cell's id or the start of it, as `ablate ls` lists them "
                                                   "(required)")

    ui = command(sub, "ui", "start the MLflow UI on the store")
    ui.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default: 5000)")

    zoo = command(sub, "zoo", "the tiny pretrained backbones: installed from the weights shipped with ablate, or "
                              "built (pretrained) here")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND")
    build = command(zoo_sub, "build", "build (pretrain) zoo backbones; weights shipped with ablate for the same "
                                      "recipe are installed instead of training, unless --force")
    build.add_argument("names", nargs="*", metavar="NAME",
                       help="backbones to build, e.g. zoo:clip-s zoo:lm-s (default: all)")
    build.add_argument("--force", action="store_true",
                       help="train here even when cached or shipped, replacing the cached folder (default: off)")
    command(zoo_sub, "ls", "list zoo backbones: whether each is in the cache (installed from the shipped weights, "
                           "or built here), whether ablate ships its weights, and its pre-training figures "
                           "(retrieval accuracy, held-out perplexity, the build time of whoever built it)")
    ship = command(zoo_sub, "ship", "maintainers: copy backbones built here into the package's shipped weights "
                                    "(what loading needs, with a sha256 manifest; docs/backbones.md)")
    ship.add_argument("names", nargs="+", metavar="NAME",
                      help="backbones to ship, e.g. zoo:clip-read-s zoo:lm-s, each built here for its current recipe "
                           "(required, no default)")
    ship.add_argument("--to", metavar="DIR", help="folder of shipped weights (default: ablate/zoo/shipped/ of this "
                                                  "installation, the source tree in an editable install)")

    tune = command(sub, "tune", "tune the learning rate per connector/encoder with Optuna, then write a tuned grid")
    grid_argument(tune)
    tune.add_argument("--trials", type=int, default=8, help="Optuna trials per value of --per (default: 8)")
    tune.add_argument("--per", default="connector.name", metavar="AXIS",
                      help="axis whose values each get their own tuned lr (default: connector.name)")
    tune.add_argument("--objective", choices=["score", "loss"], default="score",
                      help="maximise the mean 0-shot score, or minimise the final training loss (default: score)")
    tune.add_argument("--steps", type=int, help="training steps per trial (default: the grid's train.steps)")
    tune.add_argument("--warmup", action="store_true", help="tune train.warmup_ratio too (default: off)")
    return parser


def main(argv: list[str] | None = None) -> int:
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:   # started in the background by a shell: Ctrl-C
        signal.signal(signal.SIGINT, signal.default_int_handler)   # (SIGINT) must still close the run cleanly
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # lazy: pydantic, the registries and the store's modules (~0.5 s) load after parsing, so --help and --version
    # answer at once
    from ablate import commands
    from ablate.tracking.store import StoreError

    try:
        with sigterm_raises():   # SIGTERM ends any command like Ctrl-C does: the current run closes as KILLED
            return commands.dispatch(args)
    except (GridError, StoreError) as err:   # bad input, or a store / disk that cannot be written: one line
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are kept in the store; run the same command again to resume.",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated as err:
        print(f"terminated ({err}): finished cells are kept in the store; run the same command again to resume.",
              file=sys.stderr)
        return EXIT_TERMINATED


if __name__ == "__main__":
    sys.exit(main())
