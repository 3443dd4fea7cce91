"""Scores over training: the curve per axis value and the finding when an axis's leader changes."""
from __future__ import annotations

from report_frames import make_frame

from ablate.report.results import load
from ablate.report.training import by_value, leader_changes, score_over_training

AXES = ["connector.name", "connector.tokens"]


def curves_for(frame, late_winner: str | None):
    """avg-pool leads at steps 10 and 20; `late_winner` (if any) overtakes it at step 30."""
    out = {}
    for row in frame[frame["status"] == "FINISHED"].to_dict("records"):
        lead = row["connector.name"] == "avg-pool"
        late = row["connector.name"] == late_winner
        points = [(10, 0.30 if lead else 0.20), (20, 0.40 if lead else 0.30), (30, 0.45 if lead else
                                                                              (0.60 if late else 0.35))]
        out[row["cell_id"]] = {"during/world_vqa/0shot": points, "during/world_textvqa/0shot": points}
    return out


def test_the_mean_curve_per_value_pools_its_cells_and_tasks():
    results = load(make_frame(), AXES)
    lines = by_value(results, curves_for(make_frame(), None), "connector.name")
    assert set(lines) == {"avg-pool", "c-abstractor", "mlp"}
    assert lines["avg-pool"].to_dict() == {10: 0.30, 20: 0.40, 30: 0.45}
    assert lines["mlp"].to_dict() == {10: 0.20, 20: 0.30, 30: 0.35}


def test_a_leader_that_changes_over_training_is_a_finding():
    frame = make_frame()
    results = load(frame, AXES)
    lines = {line.split(":")[0]: line for line in leader_changes(results, curves_for(frame, "mlp"))}
    assert "avg-pool leads at step 10, mlp at step 30" in lines["Connector"]
    assert "144 leads at step 10, 64 at step 30" in lines["Tokens"]   # 144 tokens: avg-pool's cells alone
    assert leader_changes(results, curves_for(frame, None)) == []   # the same leader throughout: nothing to say


def test_the_figure_is_drawn_only_with_mid_training_scores():
    frame = make_frame()
    results = load(frame, AXES)
    assert score_over_training(results, {}) is None
    plot = score_over_training(results, curves_for(frame, "mlp"))
    assert plot.slug == "training"
    panels = [ax for ax in plot.figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["Connector", "Tokens"]
    assert len(panels[0].get_lines()) == 3   # one line per connector
