"""Progress for a grid: a live view in a terminal, plain periodic lines when the output is a file or a pipe."""
from __future__ import annotations

import sys
import time


class Progress:
    """Cells done / total, the current cell's step and loss."""

    def __init__(self, total_cells: int, stream=None, every_s: float = 10.0):
        self.stream = stream or sys.stderr
        self.total, self.done, self.every_s = total_cells, 0, every_s
        self.live = None
        self._last = 0.0
        self._label = ""
        if self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
                TimeElapsedColumn

            self.live = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=Console(file=self.stream))
            self.live.start()
            self._grid = self.live.add_task("cells", total=total_cells)
            self._cell = None

    def message(self, text: str) -> None:
        if self.live:
            self.live.console.print(text)
        else:
            print(text, file=self.stream, flush=True)

    def cell_started(self, index: int, label: str, steps: int) -> None:
        self._label = label
        self.message(f"[{index}/{self.total}] {label}: training {steps} steps")
        if self.live:
            if self._cell is not None:
                self.live.remove_task(self._cell)
            self._cell = self.live.add_task(f"  {label[:60]}", total=steps)

    def step(self, step: int, total: int, loss: float) -> None:
        if self.live:
            self.live.update(self._cell, completed=step, description=f"  {self._label[:48]} loss {loss:.3f}")
        elif time.monotonic() - self._last >= self.every_s or step == total:
            self._last = time.monotonic()
            self.message(f"    step {step}/{total} loss {loss:.4f}")

    def cell_finished(self, label: str, outcome: str) -> None:
        self.done += 1
        self.message(f"    {outcome}")
        if self.live:
            self.live.update(self._grid, completed=self.done)

    def close(self) -> None:
        if self.live:
            self.live.stop()
