"""`ablate` command line: run / report / ls / zoo / ui / tune. Heavy imports happen inside the commands."""
from __future__ import annotations

import argparse
import logging
import os
import sys

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # per-load bars of transformers / datasets: noise in a grid log
os.environ.setdefault("TQDM_DISABLE", "1")  # lmms-eval's per-task bars: ablate shows its own progress


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ablate", description="MM1-style ablations of multimodal LLMs.")
    parser.add_argument("--home", help="where ablate keeps caches, checkpoints and the MLflow store "
                                       "(default: $ABLATE_HOME or ./.ablate)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<home>/mlflow.db)")
    parser.add_argument("--reports", help="folder for reports (default: ./reports)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="validate the grid, run the cells that are not finished, write the report")
    run.add_argument("grid")
    run.add_argument("--runner", help="runner file (default: runners/local.yaml behaviour: one cell after another)")
    run.add_argument("--dry-run", action="store_true", help="validate and list the cells, run nothing")
    run.add_argument("--no-report", action="store_true")

    for name, text in (("report", "re-render tables, plots and the PDF from the tracking store"),
                       ("ls", "list the cells and their state in the store")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("grid")

    ui = sub.add_parser("ui", help="start the MLflow UI on the store")
    ui.add_argument("--port", default="5000")

    zoo = sub.add_parser("zoo", help="the tiny pretrained backbones built here")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    build = zoo_sub.add_parser("build", help="build (pretrain) zoo backbones")
    build.add_argument("names", nargs="*", help="e.g. zoo:clip-s zoo:lm-s (default: all)")
    zoo_sub.add_parser("ls", help="list zoo backbones, built or not, with their retrieval accuracy")

    tune = sub.add_parser("tune", help="tune the learning rate per connector/encoder with Optuna")
    tune.add_argument("grid")
    tune.add_argument("--trials", type=int, default=8)
    tune.add_argument("--per", default="connector.name", help="axis whose values each get their own tuned lr")
    tune.add_argument("--objective", choices=["score", "loss"], default="score",
                      help="maximise the mean 0-shot score, or minimise the final training loss")
    tune.add_argument("--steps", type=int, help="training steps per trial (default: the grid's)")
    tune.add_argument("--warmup", action="store_true", help="tune train.warmup_ratio too")
    return parser


def main(argv: list[str] | None = None) -> int:
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:   # started in the background by a shell: Ctrl-C
        signal.signal(signal.SIGINT, signal.default_int_handler)   # (SIGINT) must still close the run cleanly
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ablate import commands
    from ablate.config.errors import GridError

    try:
        return commands.dispatch(args)
    except GridError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are kept in the store; run the same command again to resume.",
              file=sys.stderr)
        return 130
    except BaseException as err:
        if type(err).__name__ != "Terminated":   # SIGTERM, raised by the runner so the current run closes as KILLED
            raise
        print(f"terminated ({err}): finished cells are kept in the store; run the same command again to resume.",
              file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
