""""Findings": the grid's lessons in words, computed from the runs with the tables' statistics — main
effects with their interval and per-seed signs, "beyond the noise" only when the interval excludes 0, settings
not above chance — in both the PDF and the HTML, and none (no crash) for a grid of one cell."""
from __future__ import annotations

import math
from dataclasses import replace

import pdfplumber
import pytest
from report_frames import (
    TEXT,
    injected_frame,
    make_connectors_curves,
    make_connectors_frame,
    make_connectors_meta,
)

from ablate.report import build_report, results
from ablate.report import stats as st
from ablate.report.findings import at_chance, effect_line, effects, findings
from ablate.report.tables import marginal_entries


@pytest.fixture(scope="module")
def injected():
    meta = make_connectors_meta()
    return results.load(injected_frame(), meta.swept_axes, meta.fixed), meta


def _effect(found, axis, column):
    (e,) = [e for e in found if e.axis == axis and e.metric.column == column]
    return e


def test_injected_effect_difference_interval_and_seeds(injected):
    res, meta = injected
    e = _effect(effects(res, meta), "encoder.resolution", TEXT)
    assert (e.value, e.base) == ("160", "96")
    assert e.diff.mean == pytest.approx(0.11, abs=0.004)
    # the tables' interval: the difference of the two marginal rows, se = sqrt(se_a^2 + se_b^2)
    rows = {x.labels[0]: x.stats[TEXT] for x in marginal_entries(res, "encoder.resolution")}
    a, b = rows["160"], rows["96"]
    assert e.diff.mean == pytest.approx(a.mean - b.mean)
    assert e.diff.se == pytest.approx(math.hypot(a.se, b.se))
    assert e.diff.ci == pytest.approx((e.diff.mean - st.Z95 * e.diff.se, e.diff.mean + st.Z95 * e.diff.se))
    assert e.beyond_noise and e.diff.ci[0] > 0.08
    assert list(e.per_seed) == [0, 1, 2]
    assert [e.per_seed[s] for s in (0, 1, 2)] == pytest.approx([0.10, 0.11, 0.12], abs=0.006)
    lines, _ = findings(res, meta)
    line = next(x for x in lines if x.startswith("encoder.resolution 160 vs 96") and "world_textvqa" in x)
    lo, hi = (f"{100 * x:+.1f}".replace("-", "−") for x in e.diff.ci)
    assert f"{100 * e.diff.mean:+.1f} points on world_textvqa (95% interval {lo} to {hi}): beyond the noise" in line
    assert "in each of 3 seeds (+10." in line and ", +11." in line and ", +12." in line
    assert lines[0].startswith("connector.name attn-pool vs avg-pool: −32.") and lines[1] == line  # largest first


def test_a_seed_against_the_effect_is_named():
    meta = make_connectors_meta()
    f = injected_frame()
    flip = (f["seed"] == 2) & (f["encoder.resolution"] == 160)
    f.loc[flip, TEXT] -= 0.14  # seed 2: -2 points instead of +12
    res = results.load(f, meta.swept_axes, meta.fixed)
    e = _effect(effects(res, meta), "encoder.resolution", TEXT)
    assert e.per_seed[2] == pytest.approx(-0.02, abs=0.006)
    line = next(x for x in findings(res, meta)[0] if x.startswith("encoder.resolution 160 vs 96: +"))
    assert line.endswith("inside the noise")      # one seed of three against it: the seed spread widens it
    sure = replace(e, diff=st.Stat(e.diff.mean, e.diff.n, None, 0.01, (e.diff.mean - 0.02, e.diff.mean + 0.02)))
    assert f"not in seed 2 ({100 * e.per_seed[2]:+.1f}) of 3".replace("-", "−") in effect_line(sure)


def test_null_effect_is_not_beyond_the_noise(injected):
    res, meta = injected
    e = _effect(effects(res, meta), "connector.tokens", TEXT)
    assert abs(e.diff.mean) < 0.01 and e.diff.ci[0] < 0 < e.diff.ci[1] and not e.beyond_noise
    for line in findings(res, meta, limit=50)[0]:
        if line.startswith("connector.tokens"):
            assert "beyond the noise" not in line and "inside the noise" in line


def test_setting_at_chance_is_listed(injected):
    res, meta = injected
    low = at_chance(res)
    assert [(c.axis, c.value, c.metric.column) for c in low] == [("connector.name", "attn-pool", TEXT)]
    c = low[0]
    assert c.chance == pytest.approx(1 / 12) and c.score.ci[0] <= c.chance
    line = next(x for x in findings(res, meta)[0] if x.startswith("connector.name = attn-pool"))
    assert "world_textvqa" in line and "is not above chance (8.3 %)" in line and "95% interval" in line
    assert "did not learn to read" in line


def test_at_most_eight_lines_largest_first():
    meta = make_connectors_meta()
    res = results.load(make_connectors_frame(), meta.swept_axes, meta.fixed)
    lines, left_out = findings(res, meta)
    assert 0 < len(lines) <= 8
    lines3, left3 = findings(res, meta, limit=3)
    assert len(lines3) == 3 and left3 == len(lines) + left_out - 3


def test_findings_in_pdf_and_html_before_the_tables(connectors_report):
    paths = connectors_report
    page = paths.html.read_text(encoding="utf-8")
    assert page.index(">Findings<") < page.index("How to read this report") < page.index("Results by axis")
    assert "encoder.resolution 160 vs 96: +" in page and "beyond the noise" in page
    with pdfplumber.open(paths.pdf) as doc:
        text = " ".join(p.extract_text() for p in doc.pages[:2]).replace("\n", " ")
    assert "Findings" in text and "beyond the noise" in text and "is not above chance" in text


def test_one_cell_gives_no_findings(tmp_path):
    meta = make_connectors_meta()
    f = make_connectors_frame(seeds=(0,)).iloc[:1].copy()
    res = results.load(f, meta.swept_axes, meta.fixed)
    assert effects(res, meta) == [] and at_chance(res) == [] and findings(res, meta) == ([], 0)
    paths = build_report(f, make_connectors_curves(f), meta, tmp_path / "one")
    assert "Findings" not in paths.html.read_text(encoding="utf-8")
