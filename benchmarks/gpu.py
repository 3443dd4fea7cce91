#!/usr/bin/env python
"""GPU speed of ablate's training step, grid and evaluation: `python benchmarks/gpu.py --help` (the parts and
their code: benchmarks/gpubench/)."""
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gpubench.cli import main  # noqa: E402
from benchmarks.gpubench.wholecell import WORKER_FLAG, cell_worker  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == WORKER_FLAG:
        sys.exit(cell_worker(sys.argv[2]))
    main()
