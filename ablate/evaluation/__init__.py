"""Evaluation: the embedded tasks and local datasets as lmms-eval tasks, zero- and few-shot, with error bars.

`evaluate(model, cfg, world, out_dir) -> EvalResult`; the model is any `Generator` (protocol.py).
lmms-eval is imported only when an evaluation runs, so this package imports without it.
"""
from ablate.evaluation.protocol import Context, Generator
from ablate.evaluation.runner import EvalResult, Score, TaskResult, evaluate, write_tasks

__all__ = ["Context", "EvalResult", "Generator", "Score", "TaskResult", "evaluate", "write_tasks"]
