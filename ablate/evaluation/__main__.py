"""`python -m ablate.evaluation WORLD_DIR OUT_DIR [--tasks ...] [--shots 0 4]`: write the task folders.

Prints the `lmms-eval eval` command that evaluates a checkpoint on them (docs/evaluation.md).
"""
from __future__ import annotations

import argparse
import sys

from ablate.config.schema import EvalConfig
from ablate.evaluation.runner import write_tasks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablate.evaluation", description=__doc__.splitlines()[0])
    parser.add_argument("world", help="world folder (holds questions/<task>_<split>.jsonl)")
    parser.add_argument("out", help="where the task folders go")
    parser.add_argument("--tasks", nargs="+", default=["world_vqa", "world_textvqa"])
    parser.add_argument("--shots", nargs="+", type=int, default=[0])
    parser.add_argument("--seed", type=int, default=0, help="demonstration draw seed")
    args = parser.parse_args(argv)
    cfg = EvalConfig(tasks=args.tasks, shots=args.shots, fewshot_seed=args.seed)
    planned = write_tasks(cfg, args.world, args.out)
    names = ",".join(t.lmms_name for t in planned)
    print(f"lmms-eval eval --model ablate --model_args checkpoint=<checkpoint dir> "
          f"--include_path {args.out} --tasks {names} --output_path <results dir> --log_samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
