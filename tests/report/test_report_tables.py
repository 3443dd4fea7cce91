"""Table model: marginal means, spreads, deltas, best/noise marks, failed and missing rows, exports."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from report_frames import PARAMS, make_frame, make_meta, make_rich_frame, with_cost

from ablate.report import by_type, formats, results, stats, tables
from ablate.report.names import sanitise, value_label
from ablate.report.units import human_count, human_flops, human_gib, human_seconds


def _table(frame=None, meta=None, axis="connector.name"):
    meta = meta or make_meta()
    res = results.load(make_frame() if frame is None else frame, meta.swept_axes)
    return tables.full_table(res, meta) if axis == "full" else tables.axis_table(res, axis, meta)


def _row(table, label):
    return next(r for r in table.rows if r.cells[0].lines[0].split(" ")[0] == label)


def _col(table, name):
    return table.header.index(name)


def test_metric_columns_and_labels():
    res = results.load(make_frame(), make_meta().swept_axes)
    assert [m.label for m in res.metrics] == ["VQA 0-shot", "VQA 4-shot", "TextVQA 0-shot", "TextVQA 4-shot", "Avg"]
    assert res.axes == ["connector.name", "connector.tokens"]  # train.seed is replicates, not an axis
    assert res.values["connector.tokens"] == ["64", "144"]  # numbers sort numerically
    assert res.has_replicates and res.has_ci


def test_marginal_mean_spread_delta_and_bold():
    t = _table()
    assert t.header[:4] == ["Connector", "n", "Params", "FLOPs"]
    base, cab, mlp = _row(t, "avg-pool"), _row(t, "c-abstractor"), _row(t, "mlp")
    j = _col(t, "VQA 0-shot")
    # avg-pool: mean over tokens 64 (0.40) and 144 (0.46), seeds +-0.01 -> sd 1.4 points
    assert base.cells[j].lines[0] == "43.0 ± 1.4" and base.kind == "baseline"
    assert base.cells[0].lines == ["avg-pool", "(baseline)"]
    assert cab.cells[j].lines[:2] == ["42.0 ± 1.4", "Δ −1.0"]
    assert mlp.cells[j].lines[:2] == ["50.0 ± 1.4", "Δ +7.0"] and mlp.cells[j].bold
    assert not base.cells[j].bold and not cab.cells[j].bold
    assert base.cells[1].lines == ["4"] and mlp.cells[1].lines == ["2"]  # n runs
    assert base.cells[2].lines == ["1.2M"] and base.cells[3].lines == ["158–356 MFLOPs"]
    # mlp and c-abstractor lack their 144-token cell: marked as averaged over fewer settings
    assert mlp.cells[0].lines[0] == "mlp ‡" and any(n.startswith("‡") for n in t.footnotes)


def test_measured_cost_next_to_scores_and_dash_for_old_runs():
    frame = with_cost(make_frame(), old_runs=("c-abstractor",))
    t = _table(frame)
    assert t.header[:6] == ["Connector", "n", "Params", "FLOPs", "Samples/s", "Peak mem"]
    sps, mem = _col(t, "Samples/s"), _col(t, "Peak mem")
    base, cab, mlp = _row(t, "avg-pool"), _row(t, "c-abstractor"), _row(t, "mlp")
    # avg-pool over tokens 64 and 144 and seeds 0, 1: lowest 1e9 / (1234567 * 144), highest 1.1e9 / (1234567 * 64)
    lo, hi = 1e9 / (PARAMS["avg-pool"] * 144), 1.1e9 / (PARAMS["avg-pool"] * 64)
    assert base.cells[sps].lines == [f"{human_count(lo)}–{human_count(hi)}"]
    assert base.cells[mem].lines == [f"{human_gib(PARAMS['avg-pool'] * 64 / 2e8)}–"
                                     f"{human_gib(PARAMS['avg-pool'] * 144 / 2e8)}".replace(" GiB–", "–")]
    assert cab.cells[sps].lines == ["—"] and cab.cells[mem].lines == ["—"]  # logged before the cost metrics
    assert mlp.cells[sps].lines != ["—"]  # its failed cell's cost does not hide the finished one's
    assert math.isnan(t.data.set_index("Connector").loc["c-abstractor", "Samples/s"])
    assert t.data.set_index("Connector").loc["avg-pool", "Samples/s"] == pytest.approx(
        frame[frame["connector.name"] == "avg-pool"]["cost/samples_per_s"].mean())
    note = next(n for n in t.footnotes if n.startswith("Samples/s"))
    assert "1 process per cell" in note and "— not logged" in note
    # the other axis and the full table show it too; the by-type tables (scores only) do not
    assert "Samples/s" in _table(frame, axis="connector.tokens").header
    assert "Samples/s" in _table(frame, axis="full").header
    meta = make_meta()
    typed = by_type.type_tables(results.load(with_cost(make_rich_frame()), meta.swept_axes), meta)
    assert typed and all("Samples/s" not in t.header for t in typed)


def test_measured_cost_columns_absent_without_metrics_and_processes_noted():
    assert "Samples/s" not in _table().header and not any(n.startswith("Samples/s") for n in _table().footnotes)
    one, two = with_cost(make_frame()), with_cost(make_frame(), processes=2)
    mixed = pd.concat([one[one["seed"] == 0], two[two["seed"] == 1]])
    note = next(n for n in _table(mixed).footnotes if n.startswith("Samples/s"))
    assert "processes per cell differ (1, 2)" in note and "not logged" not in note


def test_noise_dagger_marks_gap_inside_noise():
    t = _table(axis="connector.tokens")
    j = _col(t, "VQA 0-shot")
    r64, r144 = t.rows
    assert r144.cells[j].bold and r144.cells[j].lines[0] == "46.0 ± 1.4"
    assert r64.cells[j].lines[0] == "44.0 ± 1.4 †"  # 2 points behind, se ~1.5: inside the noise
    assert any(n.startswith("†") for n in t.footnotes)


def test_full_table_keeps_failed_and_missing_rows_with_reasons():
    t = _table(axis="full")
    kinds = [r.kind for r in t.rows]
    assert kinds.count("failed") == 1 and kinds.count("missing") == 2
    failed = next(r for r in t.rows if r.kind == "failed")
    assert [c.lines[0] for c in failed.cells[:2]] == ["mlp", "144"]
    assert failed.cells[2].lines == ["failed (seed 0, 1): RuntimeError: CUDA out of memory"]
    assert failed.cells[2].span == len(t.header) - 2
    missing = {r.cells[2].lines[0] for r in t.rows if r.kind == "missing"}
    assert missing == {"missing (seed 0): running", "missing (seed 1): pending"}
    assert tables.shown_labels(t)[1] == [None, "144"]  # grouped: repeated connector left blank


def test_baseline_from_meta_and_csv_matches_frame():
    frame = make_frame()
    t = _table(frame, make_meta(baseline={"connector.name": "mlp", "connector.tokens": 64}), axis="full")
    data = t.data.set_index(["Connector", "Tokens"])
    assert data.loc[("mlp", "64"), "row"] == "baseline"
    done = frame[frame.status == "FINISHED"]
    for (conn, tok), grp in done.groupby(["connector.name", "connector.tokens"]):
        for task, label in [("world_vqa", "VQA"), ("world_textvqa", "TextVQA")]:
            for k in (0, 4):
                expect = 100 * grp[f"score/{task}/{k}shot"].mean()
                assert data.loc[(conn, str(tok)), f"{label} {k}-shot"] == pytest.approx(expect, abs=1e-3)
    assert data.loc[("avg-pool", "64"), "VQA 0-shot delta"] == pytest.approx(-10.0)
    assert data.loc[("mlp", "144"), "status"] == "failed (seed 0, 1)"
    assert data.loc[("mlp", "144"), "reason"] == "RuntimeError: CUDA out of memory"
    csv = pd.read_csv(pd.io.common.StringIO(formats.to_csv(t)))
    assert csv["VQA 0-shot"].max() == pytest.approx(50.0)


def test_markdown_and_latex():
    t = _table()
    md = formats.to_markdown(t)
    assert "| Connector | n | Params | FLOPs | VQA 0-shot |" in md
    assert "| mlp ‡ | 2 | 2.1M | 269–605 MFLOPs | **50.0 ± 1.4** (Δ +7.0) [47.1, 52.9] |" in md
    tex = formats.to_latex(tables.full_table(results.load(make_frame(), make_meta().swept_axes), make_meta()))
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\textbf{50.0 $\pm$ 1.4}" in tex
    assert r"\multicolumn{8}{l}{\textit{failed (seed 0, 1): RuntimeError: CUDA out of memory}}" in tex
    assert "c-abstractor" in tex and "\\_" not in tex.split("\\caption")[0]


def test_no_replicates_no_ci():
    frame = make_frame()
    frame = frame[frame.seed == 0].drop(columns=[c for c in frame.columns if c.startswith("ci_")])
    t = _table(frame)
    assert "n" not in t.header
    mlp = _row(t, "mlp")
    assert mlp.cells[_col(t, "VQA 0-shot")].lines == ["49.0", "Δ +7.0"]


def test_stats_noise_rule():
    s = stats.of_runs([0.50, 0.52])
    assert s.mean == pytest.approx(0.51) and s.sd == pytest.approx(0.01414, abs=1e-4)
    assert s.se == pytest.approx(0.01) and s.n == 2
    assert s.ci == pytest.approx((0.51 - 1.959964 * 0.01, 0.51 + 1.959964 * 0.01))  # seeds alone: same rule
    assert stats.within_noise(s, stats.Stat(0.53, 2, se=0.01))  # 0.02 < 1.96 * 0.0141
    assert not stats.within_noise(s, stats.Stat(0.56, 2, se=0.01))
    assert not stats.within_noise(s, stats.Stat(0.51, 1))  # unknown noise: never marked
    one = stats.of_runs([0.6], [0.55], [0.65])
    assert one.ci == pytest.approx((0.55, 0.65)) and one.se == pytest.approx(0.05 / 1.959964)
    # an asymmetric bootstrap interval of one run is read as its standard error, like every other interval:
    # one method for a cell's score in every table and figure, not the percentiles here and mean ± 1.96 se there
    skew = stats.of_runs([0.6], [0.5], [0.65])
    assert skew.se == pytest.approx(0.15 / 3.919928) and skew.ci == pytest.approx((0.525, 0.675))
    assert stats.of_cells([skew]).ci == pytest.approx(skew.ci)
    assert stats.of_runs([math.nan]) is None


def test_missing_axis_column_is_named():
    with pytest.raises(ValueError, match="encoder.resolution"):
        results.load(make_frame(), ["connector.name", "encoder.resolution"])


def test_names_and_units():
    assert sanitise("MM1 Table 2: connectors / tokens") == "mm1-table-2-connectors-tokens"
    assert sanitise("../../etc/passwd") == "etc-passwd"
    assert sanitise("Ünïcödé grid") == "unicode-grid" and sanitise("///") == "grid"
    assert value_label({"caption": 0.45, "interleaved": 0.45, "text": 0.1}) == "caption 45 / interleaved 45 / text 10"
    assert human_count(1_234_567) == "1.2M" and human_count(950) == "950" and human_count(3.4e9) == "3.4G"
    assert human_flops(3.4e9) == "3.4 GFLOPs"
    assert human_seconds(42) == "42 s" and human_seconds(125) == "2 min 05 s" and human_seconds(7500) == "2 h 05 min"
