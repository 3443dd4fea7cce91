"""A cell's training compute through `ablate run`: FLOPs counted once and totalled over its steps, a budget in
tokens turned into steps from that count, and scores over training with `eval.every`."""
from __future__ import annotations

import pytest
from tinyworld import IN_PROCESS

from ablate.cli import main
from ablate.resolve import load_grid
from ablate.tracking.results import results_frame, score_curves
from ablate.tracking.store import Store


@pytest.mark.slow
def test_a_budget_in_tokens_sets_the_steps_and_every_step_count_is_scored(tiny_grid, workspace):
    grid_path = tiny_grid(axes="connector.tokens: [4, 16]", steps=6,
                          extra="  # the budget replaces the steps below\n")
    text = grid_path.read_text().replace("train: {steps: 6,", "train: {budget: {tokens: 6000},")
    text = text.replace("eval: {tasks: [world_vqa, world_textvqa], limit: 12,",
                        "eval: {tasks: [world_vqa], limit: 12, every: 2, every_limit: 6, blind: false,")
    grid_path.write_text(text)
    assert main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run", str(grid_path),
                 *IN_PROCESS]) == 0
    grid = load_grid(grid_path)
    store = Store(workspace.tracking_uri, workspace.artifacts)
    frame, _ = results_frame(store, grid)
    assert list(frame["status"]) == ["FINISHED", "FINISHED"]
    steps = {}
    for row in frame.to_dict("records"):
        params = store.client.get_run(row["run_id"]).data.params
        steps[row["connector.tokens"]] = int(params["train/steps"])
        per_step = row["cost/step_flops"]
        assert row["cost/train_flops"] == pytest.approx(per_step * steps[row["connector.tokens"]])
        # the steps are the fewest whose tokens reach the budget
        tokens_per_step = row["cost/train_tokens"] / steps[row["connector.tokens"]]
        assert (steps[row["connector.tokens"]] - 1) * tokens_per_step < 6000 <= steps[row["connector.tokens"]] \
            * tokens_per_step
    assert steps[4] > steps[16]   # more visual tokens a row: fewer steps for the same tokens
    curves = score_curves(store, frame)
    for row in frame.to_dict("records"):
        logged = [step for step, _ in curves[row["cell_id"]]["during/world_vqa/0shot"]]
        n = steps[row["connector.tokens"]]
        assert logged == list(range(2, n, 2))   # every 2 steps, the last left to the final evaluation
    assert (workspace.reports / "tiny" / "tiny_fig_training.png").is_file()
