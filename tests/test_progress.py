"""The grid's progress lines: each cell's wall time, the time left once a cell has finished, timestamps in a log."""
from __future__ import annotations

import io
import re
import threading
from datetime import datetime, timedelta

from ablate.progress import Progress, duration


class Clock:
    """A hand-moved clock for both the monotonic seconds and the wall-clock timestamps."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime(2026, 12, 2, 7, 0, 0) + timedelta(seconds=self.t - 1000.0)


def progress(total: int, **kw) -> tuple[Progress, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    return Progress(total, stream=stream, clock=clock, now=clock.now, **kw), stream, clock


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_duration_reads_at_a_glance():
    assert [duration(s) for s in (0, 42.4, 59.6, 185, 3600, 3725)] == \
        ["0 s", "42 s", "1 min 00 s", "3 min 05 s", "1 h 00 min", "1 h 02 min"]


def test_log_lines_carry_a_timestamp():
    p, stream, clock = progress(2)
    p.message("hello")
    clock.t += 65
    p.message("later")
    assert lines(stream) == ["2026-12-02 07:00:00 hello", "2026-12-02 07:01:05 later"]


def test_wall_time_per_cell_and_no_estimate_before_the_first_cell_finishes():
    p, stream, clock = progress(3)
    p.cell_started(1, "a", 10)
    assert p.time_left() is None
    clock.t += 60
    assert p.time_left() is None   # nothing finished yet: no estimate
    p.cell_finished("a", "vqa 0.300")
    last = lines(stream)[-1]
    assert last.startswith("2026-12-02 07:01:00 ")
    assert "vqa 0.300 · done in 1 min 00 s · 1/3 cells · about 2 min 00 s left" in last


def test_estimate_follows_the_mean_of_the_cells_run():
    p, stream, clock = progress(4)
    for i, (label, wall) in enumerate((("a", 40), ("b", 80)), 1):
        p.cell_started(i, label, 10)
        clock.t += wall
        p.cell_finished(label, "")
    assert p.time_left() == 2 * 60          # two cells left at the mean of 40 s and 80 s
    p.cell_started(3, "c", 10)
    clock.t += 45                           # c has run 45 of its expected 60 s
    assert p.time_left() == 15 + 60
    clock.t += 100                          # overdue: it counts as about to finish, not negative
    assert p.time_left() == 60
    p.cell_finished("c", "")
    p.cell_started(4, "d", 10)
    clock.t += 10
    p.cell_finished("d", "")
    assert "4/4 cells" in lines(stream)[-1] and "left" not in lines(stream)[-1]


def test_skipped_and_failed_cells_do_not_skew_the_estimate():
    p, stream, clock = progress(5, done=1)        # one cell finished before this run
    p.cell_finished("old", "[2/5] old: already finished")
    assert "2/5 cells" in lines(stream)[-1] and p.time_left() is None
    p.cell_started(3, "crash", 10)
    clock.t += 2
    p.cell_finished("crash", "FAILED: boom")
    assert "failed after 2 s" in lines(stream)[-1] and "left" not in lines(stream)[-1]
    assert p.time_left() is None                  # a crash in 2 s says nothing about the other cells
    p.cell_started(4, "good", 10)
    clock.t += 100
    p.cell_finished("good", "vqa 0.5")
    assert p.time_left() == 100                   # the finished cell is the sample, the failure is not
    p.cell_started(5, "elsewhere", 10)
    clock.t += 1
    p.cell_finished("elsewhere", "held by another process", ran=False)
    assert "elsewhere" not in p.walls


def test_parallel_cells_divide_the_time_left():
    p, stream, clock = progress(6)
    p.cell_started(1, "a", where="on cpu0 (log a.log)")
    p.cell_started(2, "b", where="on cpu1 (log b.log)")
    assert lines(stream)[0].endswith("[1/6] a: started on cpu0 (log a.log)")
    clock.t += 60
    p.cell_finished("a", "")
    assert lines(stream)[-1].endswith("    a · done in 1 min 00 s · 1/6 cells · about 2 min 00 s left")
    # b is due now (0 s left); 4 cells wait at 60 s each, two at a time
    assert p.time_left() == 4 * 60 / 2


def test_overdue_cells_are_said_to_be_due_not_zero_seconds_away():
    p, stream, clock = progress(2)
    p.cell_started(1, "a")
    p.cell_started(2, "b")
    clock.t += 50
    p.cell_finished("a", "")   # b started with a, so it is expected now
    assert p.time_left() == 0
    assert lines(stream)[-1].endswith("a · done in 50 s · 1/2 cells · the rest is due any moment")


def test_steps_are_printed_at_most_every_every_s_and_always_at_the_end():
    p, stream, clock = progress(1, every_s=10)
    p.cell_started(1, "a", 5)
    for step in range(1, 6):
        p.step(step, 5, 1.0 / step)
        clock.t += 3
    steps = [line for line in lines(stream) if " step " in line]
    assert [re.search(r"step (\d)/5", line).group(1) for line in steps] == ["1", "5"]


def test_threads_may_report_at_once():
    p, stream, clock = progress(40)

    def worker(k: int) -> None:
        for i in range(10):
            label = f"w{k}-{i}"
            p.cell_started(i, label)
            p.cell_finished(label, "")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert p.done == 40 and len(p.walls) == 40 and not p._started
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in lines(stream))


def test_a_terminal_gets_the_live_view():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream, clock = Tty(), Clock()
    p = Progress(2, stream=stream, clock=clock, now=clock.now)
    try:
        p.cell_started(1, "a", 4)
        p.step(2, 4, 0.5)
        clock.t += 30
        p.cell_finished("a", "vqa 0.25")
    finally:
        p.close()
    text = stream.getvalue()
    assert "done in 30 s" in text and "about 30 s left" in text


def test_with_costs_the_estimate_is_per_unit_of_cost():
    # workers hand out the dearest cells first: after a dear one, cheap ones must not be counted as dear
    p, stream, clock = progress(3, costs={"dear": 144, "cheap1": 64, "cheap2": 64})
    p.cell_started(1, "dear")
    clock.t += 72                            # 0.5 s per unit of cost
    p.cell_finished("dear", "")
    assert p.time_left() == (64 + 64) * 0.5  # not 2 x 72 s, the plain mean
    p.cell_started(2, "cheap1")
    clock.t += 12
    assert p.time_left() == (32 - 12) + 32
    p.cell_finished("cheap1", "held by another process", ran=False)   # not a sample, not waiting any more
    assert p.time_left() == 32


def test_a_finished_cell_prints_its_logged_wall_time_the_reports_figure():
    p, stream, clock = progress(3)
    p.cell_started(1, "a", 10)
    clock.t += 76   # the runner's clock adds starting the process and closing the run
    p.cell_finished("a", "vqa 0.300", wall_s=70.2)
    assert "vqa 0.300 · done in 1 min 10 s · 1/3 cells · about 2 min 32 s left" in lines(stream)[-1]
