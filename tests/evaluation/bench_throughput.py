"""Questions per second of the evaluation path (lmms-eval + AblateLMM) with the colour test double.

Not a test (pytest does not collect it): `python tests/evaluation/bench_throughput.py`. The double costs
microseconds, so this measures the harness: task loading, request building, image loading, few-shot
drawing, adapter batching, scoring, bootstrap.
"""
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from colour_world import ColourGenerator, make_world  # noqa: E402

from ablate.config.schema import EvalConfig  # noqa: E402
from ablate.evaluation import evaluate  # noqa: E402


def main():
    tmp = Path(tempfile.mkdtemp())
    world = make_world(tmp / "world", n_test_per_colour=50, n_demo_per_colour=10)  # 300 test questions
    evaluate(ColourGenerator(), EvalConfig(tasks=["world_vqa"], limit=2, bootstrap=0), world, tmp / "warm")
    for shots in ([0], [4], [8]):
        for tasks in (["world_vqa"], ["world_caption"]):
            cfg = EvalConfig(tasks=tasks, shots=shots, bootstrap=1000, batch_size=32)
            t0 = time.perf_counter()
            result = evaluate(ColourGenerator(), cfg, world, tmp / f"{tasks[0]}{shots[0]}")
            wall = time.perf_counter() - t0
            print(f"{tasks[0]:14s} {shots[0]}-shot: {result.questions} questions in {wall:.2f} s "
                  f"= {result.questions / wall:.0f} q/s (model {result.model_seconds:.3f} s)")


if __name__ == "__main__":
    main()
