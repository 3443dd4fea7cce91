"""Progress for a grid: a live view in a terminal, plain timestamped lines when the output is a file or a pipe.

Per cell it says the wall time when the cell is done; once one cell has finished it also says how long the grid
has left: the mean wall time of the cells finished so far times the cells still to do, divided by how many run at
once (failed cells, and cells skipped because they were already finished, are not in the mean). When the runner
says what each cell costs (`costs`: steps x visual tokens, `runners.process.expected_cost`), the mean is per unit
of cost, so that cheap cells left after dear ones (workers hand out the dearest first) are not counted as dear.
Runners call `cell_started` and `cell_finished`, from several threads when cells run in parallel.
"""
from __future__ import annotations

import sys
import threading
import time
from datetime import datetime


def duration(seconds: float) -> str:
    """42 s, 3 min 05 s, 1 h 02 min: what a person reads at a glance."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Cells done / total, each cell's wall time, the time left for the grid, the current cell's step and loss.

    `costs` (label -> a number proportional to the cell's expected wall time) weights the estimate; cells without
    one count as the mean of the known costs. `clock` (seconds, monotonic) and `now` (wall-clock datetime, for the
    timestamps) can be replaced in tests.
    """

    def __init__(self, total_cells: int, stream=None, every_s: float = 10.0, done: int = 0,
                 clock=time.monotonic, now=datetime.now, costs: dict[str, float] | None = None):
        self.stream = stream or sys.stderr
        self.total, self.done, self.every_s = total_cells, done, every_s
        self.clock, self.now = clock, now
        self.walls: dict[str, float] = {}        # label -> wall time of each cell run here and finished
        self.failed: set[str] = set()
        self._started: dict[str, float] = {}     # label -> clock at its start, while it runs
        self._parallel = 1                       # the most cells seen running at once
        self.costs = dict(costs or {})
        self._ended: set[str] = set()            # labels of cells over, whatever their outcome
        self._lock = threading.RLock()
        self._last = float("-inf")
        self._label = ""
        self.live = None
        if self.stream.isatty():
            from rich.console import Console  # lazy: rich only for a live view in a terminal
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self.live = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("{task.fields[left]}"),
                                     console=Console(file=self.stream))
            self.live.start()
            self._grid = self.live.add_task("cells", total=total_cells, completed=done, left="")
            self._cell = None

    def message(self, text: str) -> None:
        """One line: printed above the live view in a terminal, with a timestamp in a file or a pipe."""
        with self._lock:
            if self.live:
                self.live.console.print(text, markup=False, highlight=False)
            else:
                print(f"{self.now():%Y-%m-%d %H:%M:%S} {text}", file=self.stream, flush=True)

    def cell_started(self, index: int, label: str, steps: int | None = None, where: str = "") -> None:
        """`where`: e.g. 'on gpu0 (log ...)' for a cell in a process of its own."""
        with self._lock:
            self._label = label
            self._started[label] = self.clock()
            self._parallel = max(self._parallel, len(self._started))
            doing = f"training {steps} steps" if steps else "started"
            self.message(f"[{index}/{self.total}] {label}: {doing}{' ' + where if where else ''}")
            if self.live:
                if self._cell is not None:
                    self.live.remove_task(self._cell)
                self._cell = self.live.add_task(f"  {label[:60]}", total=steps or 1, left="")

    def step(self, step: int, total: int, loss: float) -> None:
        with self._lock:
            if self.live:
                self.live.update(self._cell, completed=step, total=total,
                                 description=f"  {self._label[:48]} loss {loss:.3f}")
            elif self.clock() - self._last >= self.every_s or step == total:
                self._last = self.clock()
                self.message(f"    step {step}/{total} loss {loss:.4f}")

    def cell_finished(self, label: str, outcome: str, failed: bool | None = None, ran: bool = True,
                      wall_s: float | None = None) -> None:
        """A cell is over: done, failed or skipped. Its wall time counts if `cell_started` saw it start and it
        ran here (`ran=False`: another process held or had finished it). `failed` defaults to whether `outcome`
        starts with 'FAILED'. `wall_s`: the cell's logged wall time (its `wall_s` metric, the report's figure),
        printed when given; the time since `cell_started` (which adds starting the cell's process and opening and
        closing its run) is printed otherwise, and always feeds the time-left estimate."""
        with self._lock:
            self.done += 1
            self._ended.add(label)
            started = self._started.pop(label, None)
            failed = outcome.startswith("FAILED") if failed is None else failed
            parts = [outcome] if outcome else []
            if self._parallel > 1 and label not in outcome:   # lines of cells running at once interleave
                parts.insert(0, label)
            if started is not None and ran:
                wall = self.clock() - started
                self.walls[label] = wall
                if failed:
                    self.failed.add(label)
                shown = wall if wall_s is None else wall_s
                parts.append(f"{'failed after' if failed else 'done in'} {duration(shown)}")
            parts.append(f"{self.done}/{self.total} cells")
            left = self.time_left()
            left = "" if left is None or self.done >= self.total else \
                f"about {duration(left)} left" if left >= 1 else "the rest is due any moment"
            if left:
                parts.append(left)
            self.message("    " + " · ".join(parts))
            if self.live:
                self.live.update(self._grid, completed=self.done, left=left)

    def time_left(self) -> float | None:
        """Seconds the grid still needs, or None before any cell run here has finished. Only finished cells are
        the estimate's sample: a cell that failed in 2 s says nothing about how long the others take."""
        with self._lock:
            sample = [label for label in self.walls if label not in self.failed]
            if not sample:
                return None
            per_unit = sum(self.walls[label] for label in sample) / sum(self._cost(label) for label in sample)
            now = self.clock()
            running = [max(0.0, self._cost(label) * per_unit - (now - t)) for label, t in self._started.items()]
            waiting = max(0, self.total - self.done - len(running))
            over_or_running = self._ended | set(self._started)
            known = sorted(c for label, c in self.costs.items() if label not in over_or_running)[:waiting]
            waiting_cost = sum(known) + (waiting - len(known)) * self._cost(None)
            return (waiting_cost * per_unit + sum(running)) / max(1, self._parallel)

    def _cost(self, label: str | None) -> float:
        if label in self.costs:
            return self.costs[label]
        return sum(self.costs.values()) / len(self.costs) if self.costs else 1.0

    def close(self) -> None:
        if self.live:
            self.live.stop()
