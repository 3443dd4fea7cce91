"""`ablate ls GRID`: one line per cell, the axes by their short names and the main scores in %, fit for a terminal."""
from __future__ import annotations

from ablate.cli import main
from ablate.resolve import load_grid
from ablate.tracking.store import Store


def test_ls_shows_the_axes_and_main_scores_not_the_per_type_ones(make_grid, workspace, capsys):
    path = make_grid(axes="connector.name: [avg-pool, mlp]\n  encoder.resolution: [64, 96]")
    grid = load_grid(path)
    store = Store(workspace.tracking_uri, workspace.artifacts)
    logger = store.start_run(store.experiment_id(grid), grid, grid.cells[0])
    logger.log_metrics({"score/world_vqa/0shot": 0.25, "score/world_vqa/0shot/colour": 0.5})
    logger.finish("FINISHED")

    assert main(["--home", str(workspace.home), "ls", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["cell_id", "connector", "resolution", "status", "world_vqa/0shot"]
    first = lines[1].split()
    assert first[:2] == [grid.cells[0].id, "avg-pool"] and first[-2:] == ["FINISHED", "25.0"]
    assert not any("colour" in line for line in lines)
    assert "finished: 1" in "\n".join(lines) and "missing: 3" in "\n".join(lines)
    table = lines[:lines.index("scores in % (per question type and with their intervals: `ablate report`)")]
    assert len(table) == 5 and max(len(line) for line in table) <= 80   # fits a terminal
