"""The report as a reader sees it: labels after a page break, chance and task baselines on tables and
figures, one interval for tables and error bars, score axes from 0, a readable cover, short tables in portrait,
an HTML table of contents, and a report folder that a failure mid-write leaves whole."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pdfplumber
import pytest
from report_frames import (
    CONNECTORS_AXES,
    make_connectors_curves,
    make_connectors_frame,
    make_connectors_meta,
    make_frame,
    make_meta,
)

from ablate.report import build_report, html, pdf, plots, results
from ablate.report.document import Document, TableBlock
from ablate.report.encoders import encoder_table
from ablate.report.tables import axis_table, full_table

CHANCE = 100 / 12  # TextVQA-style: one of the world's 12 words


def _res(frame=None, meta=None):
    meta = meta or make_connectors_meta()
    return results.load(make_connectors_frame() if frame is None else frame, meta.swept_axes, meta.fixed)


def _text(path):
    with pdfplumber.open(path) as doc:
        return " ".join(p.extract_text() for p in doc.pages).replace("\n", " ")


@pytest.fixture
def connectors(connectors_report):
    """The connectors-shaped report (its scores as test_report_findings injects them: nothing here reads them)."""
    return connectors_report


def test_row_labels_are_repeated_on_the_page_a_table_continues_on(tmp_path):
    frame = make_connectors_frame(seeds=(0,))
    frame = pd.concat([frame.assign(**{"connector.name": frame["connector.name"] + suffix,
                                       "cell_id": frame["cell_id"] + suffix}) for suffix in ("", "-b", "-c")])
    meta = make_connectors_meta()
    doc = Document("t", "s", "f", [TableBlock(full_table(_res(frame, meta), meta), 1)])
    path = pdf.render(doc, tmp_path / "t.pdf")
    continued = 0
    with pdfplumber.open(path) as document:
        assert len(document.pages) >= 2
        for page in document.pages:
            words = page.extract_words()
            head = next(w for w in words if w["text"] == "Connector")
            last = next(w for w in words if w["text"] == "Resolution" and abs(w["top"] - head["top"]) < 1)
            # the last axis column is never blank: its topmost value is the first row of the page
            first_top = min(w["top"] for w in words if abs(w["x0"] - last["x0"]) < 2 and w["top"] > last["bottom"])
            labels = [w for w in words if abs(w["x0"] - head["x0"]) < 2 and w["top"] > head["bottom"]]
            # the first row under the heading names its connector, on the first page and on every later one
            assert labels and min(w["top"] for w in labels) == pytest.approx(first_top, abs=1.5), page.page_number
            continued += page.page_number > 1
    assert continued >= 1


def test_chance_row_in_tables_from_the_worlds_words():
    res = _res()
    t = axis_table(res, "encoder.resolution", make_connectors_meta())
    chance = t.rows[-1]
    assert chance.kind == "reference" and chance.cells[0].lines == ["Chance"]
    cells = dict(zip(t.header, (c.lines[0] for c in chance.cells)))
    assert cells["TextVQA 0-shot"] == "8.3" and cells["VQA 0-shot"] == "—" and cells["Avg"] == "—"
    assert not any(c.bold for c in chance.cells)
    assert "chance TextVQA: 1 / 12 world words" in t.caption
    row = t.data[t.data["row"] == "chance"].iloc[0]
    assert row["TextVQA 0-shot"] == pytest.approx(CHANCE, abs=1e-3)
    no_words = results.load(make_connectors_frame(), CONNECTORS_AXES, {})  # nothing says how many words
    assert axis_table(no_words, "encoder.resolution", make_connectors_meta()).rows[-1].kind != "reference"


def test_a_task_states_its_own_chance_and_baseline_and_both_are_drawn():
    frame = make_connectors_frame()
    frame["chance/world_vqa"], frame["baseline/world_vqa"] = 0.25, 0.28  # e.g. a question-only model
    res = _res(frame)
    t = axis_table(res, "connector.name", make_connectors_meta())
    by_label = {r.cells[0].lines[0]: dict(zip(t.header, (c.lines[0] for c in r.cells))) for r in t.rows}
    assert by_label["Chance"]["VQA 0-shot"] == "25.0" and by_label["Task baseline"]["VQA 0-shot"] == "28.0"
    assert by_label["Chance"]["Avg"] == f"{(25 + CHANCE) / 2:.1f}"  # every task's chance known: the Avg's too
    assert by_label["Task baseline"]["TextVQA 0-shot"] == "—"
    fig = plots.score_lines(res, "connector.tokens", "tokens", "tokens")
    levels = {ax.get_title(): sorted(round(ln.get_ydata()[0], 2) for ln in ax.get_lines()
                                     if len(set(ln.get_ydata())) == 1 and ln.get_linestyle() in (":", "--"))
              for ax in fig.figure.axes}
    assert levels["VQA 0-shot"] == [25.0, 28.0] and levels["TextVQA 0-shot"] == [round(CHANCE, 2)]
    assert "dotted: chance" in fig.caption and "dashed: the task's own baseline" in fig.caption


def test_score_axes_start_at_zero_and_show_chance():
    res = _res()
    for p in plots.all_plots(res, {}):
        if p.slug in ("tokens", "resolution", "cost", "mixture"):
            for ax in p.figure.axes:
                assert ax.get_ylim()[0] == 0, (p.slug, ax.get_title())
    fig = plots.score_lines(res, "encoder.resolution", "resolution", "resolution", by_type=True).figure
    text = next(ax for ax in fig.axes if ax.get_title() == "TextVQA 0-shot")
    assert any(np.allclose(ln.get_ydata(), CHANCE) for ln in text.get_lines())
    vqa = next(ax for ax in fig.axes if ax.get_title() == "VQA 0-shot")
    assert not any(len(set(ln.get_ydata())) == 1 for ln in vqa.get_lines())  # VQA's chance is not known


def test_error_bars_are_the_tables_intervals():
    """Tokens figure, panel VQA 0-shot, line avg-pool: the full table's cells (connector x tokens)."""
    frame, meta = make_frame(), make_meta()
    res = results.load(frame, meta.swept_axes)
    data = full_table(res, meta).data.set_index(["Connector", "Tokens"])
    fig = plots.score_lines(res, "connector.tokens", "tokens", "tokens").figure
    ax = next(a for a in fig.axes if a.get_title() == "VQA 0-shot")
    bars = next(c for c in ax.containers if c.get_label() == "avg-pool")
    segments = bars.lines[2][0].get_segments()
    ticks = list(ax.get_xticks())
    for (x, low), (_, high) in segments:
        tick = min(ticks, key=lambda v: abs(v - x))   # lines sit a little apart along x (plots.dodge)
        assert 0 < abs(x - tick) <= 0.05 * (max(ticks) - min(ticks))
        row = data.loc[("avg-pool", str(int(tick)))]
        assert (low, high) == pytest.approx((row["VQA 0-shot ci_low"], row["VQA 0-shot ci_high"]), abs=1e-3)


def test_one_interval_method_for_a_single_run():
    """One seed: the full table's interval of a cell and the axis table's for the same lone cell are the same
    normal interval (the bootstrap's width read as a standard error), even for a skewed bootstrap interval."""
    frame = make_frame()
    frame = frame[(frame.seed == 0) & (frame["connector.tokens"] == 64)].copy()
    frame["ci_low/world_vqa/0shot"] = frame["score/world_vqa/0shot"] - 0.06  # skewed: 6 points below, 2 above
    frame["ci_high/world_vqa/0shot"] = frame["score/world_vqa/0shot"] + 0.02
    meta = make_meta(swept_axes=["connector.name"])
    res = results.load(frame, meta.swept_axes)
    full = full_table(res, meta).data.set_index("Connector")
    by_axis = axis_table(res, "connector.name", meta).data.set_index("Connector")
    for name in ("avg-pool", "mlp"):
        low, high = full.loc[name, "VQA 0-shot ci_low"], full.loc[name, "VQA 0-shot ci_high"]
        assert (low, high) == pytest.approx((by_axis.loc[name, "VQA 0-shot ci_low"],
                                             by_axis.loc[name, "VQA 0-shot ci_high"]))
        assert high - full.loc[name, "VQA 0-shot"] == pytest.approx(4.0, abs=1e-3)  # symmetric: ± 1.96 se


def test_cover_prints_fixed_settings_readably_and_the_backbone_pretraining(connectors):
    text = _text(connectors.pdf)
    cover = text[: text.index("How to read")]
    assert "options =" not in cover and "sources =" not in cover and "custom_tasks" not in cover  # empty: left out
    assert "tasks = world_vqa, world_textvqa" in cover and "['" not in cover and "{}" not in cover
    assert "Backbone pre-training zoo:clip-read-s 4 min 05 s" in cover
    assert "(excluding backbone pre-training)" in cover
    assert "Fixed: " in text and "connector.options = ;" not in text  # table captions too


def test_short_table_stays_portrait():
    res = _res()
    t = encoder_table(res, make_connectors_meta())
    assert len(t.rows) == 1
    doc = pdf._PDF("f")
    orientation, size, groups = pdf.plan(doc, t)
    assert orientation == "P" and len(groups) == 1 and size >= 6.5
    long = full_table(res, make_connectors_meta())
    assert pdf.plan(doc, long)[0] == "L"  # a long, wide table still turns the page


def test_html_has_a_table_of_contents_with_working_anchors(connectors):
    page = connectors.html.read_text()
    nav = page[page.index('<nav class="toc"'): page.index("</nav>")]
    targets = re.findall(r'href="#([^"]+)"', nav)
    ids = set(re.findall(r' id="([^"]+)"', page))
    assert len(targets) >= 12 and set(targets) <= ids
    for needle in ("Results by axis", "Table 2. Connector", "Figure 1.", "Appendix"):
        assert needle in nav
    assert page.count("<section>") == page.count("</section>") >= 5


def test_loss_curves_are_small_multiples_one_smoothed_line_per_setting():
    res = _res()
    frame = make_connectors_frame()
    p = plots.loss_curves(res, make_connectors_curves(frame))
    axs = p.figure.axes
    assert [a.get_title() for a in axs] == ["Connector = avg-pool", "Connector = attn-pool"]
    for ax in axs:
        thick = [ln for ln in ax.get_lines() if ln.get_linewidth() > 1]
        assert len(thick) == 4  # tokens x resolution; the 3 seeds of each are averaged
        assert len(ax.get_lines()) == 4 + 12  # and drawn faint
    assert "smoothed" in p.caption


@pytest.mark.slow
def test_a_failure_mid_report_leaves_the_previous_report_whole(tmp_path, monkeypatch):
    frame, meta = make_frame(), make_meta()
    out = tmp_path / "reports" / "grid"
    first = build_report(frame, {}, meta, out)
    (out / "notes.txt").write_text("mine")  # not the report's: carried over
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(doc, path):
        path.write_text("half")
        raise RuntimeError("killed while writing the HTML")

    monkeypatch.setattr(html, "render", broken)
    with pytest.raises(RuntimeError, match="killed"):
        build_report(frame.assign(**{"score/world_vqa/0shot": 0.9}), {}, meta, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == [".grid.lock", "grid"]  # no temporary folder left behind
    monkeypatch.undo()
    (out.parent / ".grid.tmp-stale").mkdir()  # what a SIGKILL would leave
    second = build_report(frame, {}, meta, out)
    assert sorted(p.name for p in out.parent.iterdir()) == [".grid.lock", "grid"]
    assert (out / "notes.txt").read_text() == "mine"
    assert second.pdf == first.pdf and second.pdf.exists() and all(p.exists() for p in second.all())


def test_shipped_backbones_are_not_counted_as_pretraining_done_here():
    import pandas as pd

    from ablate.report.document import _pretraining_text
    from ablate.report.meta import ReportMeta

    runs = pd.DataFrame({"encoder/build_s": [1304.0, 1304.0], "encoder/shipped": [1.0, 1.0],
                         "llm/build_s": [151.0, 151.0], "llm/shipped": [0.0, 0.0]})
    meta = ReportMeta(grid_name="g", fixed={"encoder.name": "zoo:clip-read-s", "llm.name": "zoo:lm-s"})
    assert _pretraining_text(runs, meta) == ("zoo:clip-read-s 21 min 44 s (shipped with ablate: not run here), "
                                             "zoo:lm-s 2 min 31 s; done once, when a backbone is first used, and "
                                             "cached for later grids")


WRITER = """
import sys
from report_frames import make_frame, make_meta
from ablate.report import build_report
for _ in range(int(sys.argv[2])):
    paths = build_report(make_frame(), {}, make_meta(), sys.argv[1])
    assert all(p.exists() for p in paths.all())
"""


@pytest.mark.slow
def test_two_writers_of_one_report_at_once_both_succeed(tmp_path):
    """`ablate report` twice at once (or `ablate eval` while `ablate run` renders): the second waits for the first
    (a lock per grid's report) instead of removing the folder the first is writing."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "reports" / "grid"
    env = {**os.environ, "PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(out), "3"], env=env, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    errors = [w.communicate(timeout=600)[1] for w in writers]
    assert [w.returncode for w in writers] == [0, 0], errors
    assert not any("Traceback" in e for e in errors), errors
    assert sorted(p.name for p in out.parent.iterdir()) == [".grid.lock", "grid"]   # no temporary folder left
    written = sorted(out.glob("*_report.*"))
    assert [p.suffix for p in written] == [".html", ".pdf"] and all(p.stat().st_size > 0 for p in written)
