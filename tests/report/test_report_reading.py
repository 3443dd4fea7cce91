"""Rules a reader of the report relies on: an outline that is a tree with every figure in it, one chance mark per
question type, captions whose numbers come from the tables they describe, and figures that keep tied points
visible."""
from __future__ import annotations

import re

import numpy as np
import pdfplumber
import pypdf
import pytest
from report_frames import (
    CONNECTORS_AXES,
    RICH_AXES,
    VQA_TYPES,
    make_connectors_frame,
    make_connectors_meta,
    make_meta,
    make_rich_frame,
)

from ablate.report import build_report, plots, results
from ablate.report.encoders import encoder_table


def _outline(path) -> list[tuple[int, str]]:
    """(depth, title) of every bookmark, in the order a reader following the outline meets them."""
    def walk(items, depth):
        for item in items:
            if isinstance(item, list):
                yield from walk(item, depth + 1)
            else:
                yield depth, item.title
    return list(walk(pypdf.PdfReader(path).outline, 0))


def test_the_outline_is_a_tree_that_reaches_every_section_and_figure(frame_report):
    paths = frame_report[0]
    outline = _outline(paths.pdf)
    depths = [d for d, _ in outline]
    assert depths[0] == 0 and set(depths) == {0, 1}   # two levels, starting at the top
    tops = [t for d, t in outline if d == 0]
    assert tops[0] == "Summary" and {"Figures", "Appendix"} <= set(tops)
    assert [t for _, t in outline if t.startswith("Figure ")] == [f"Figure {i}: " + t.split(": ", 1)[1] for i, t in
                                                                  enumerate((t for _, t in outline
                                                                             if t.startswith("Figure ")), 1)]
    figures = [t for d, t in outline if t.startswith("Figure ")]
    assert len(figures) == len(paths.figures) and all(d == 1 for d, t in outline if t.startswith("Figure "))
    under_figures = outline[[t for _, t in outline].index("Figures") + 1:][:len(figures)]
    assert [t for _, t in under_figures] == figures   # each figure's entry sits under "Figures"
    assert "Findings" in [t for d, t in outline if d == 1][:4]   # a cover section, under "Summary"


def _typed_frame():
    frame = make_connectors_frame(seeds=(0,))
    levels = {t: 1 / (i + 3) for i, t in enumerate(VQA_TYPES)}   # a different chance per question type
    for qtype, level in levels.items():
        frame[f"chance/world_vqa/0shot/{qtype}"] = level
    frame["chance/world_vqa/0shot"] = 0.2
    return frame, levels


def test_one_chance_mark_per_question_type_at_its_own_level():
    frame, levels = _typed_frame()
    res = results.load(frame, CONNECTORS_AXES)
    fig = plots.score_lines(res, "encoder.resolution", "resolution", "resolution", by_type=True).figure
    ax = next(a for a in fig.axes if a.get_title() == "VQA 0-shot, by question type")
    marks = {line.get_gid(): line.get_ydata()[0] for line in ax.lines if (line.get_gid() or "").startswith("chance")}
    assert marks == pytest.approx({f"chance:{t}": 100 * v for t, v in levels.items()})
    assert not any(np.isclose(line.get_ydata()[0], 100 * np.mean(list(levels.values())))
                   for line in ax.lines if len(set(line.get_ydata())) == 1)   # no line at their mean
    labels = [c.get_label() for c in ax.containers]
    assert labels == [f"{t} (chance {100 * v:.1f}%)" for t, v in levels.items()]


def test_tied_lines_stay_apart_with_their_error_bars():
    frame = make_connectors_frame(seeds=(0,))
    frame["score/world_vqa/0shot"] = 0.3   # every connector ties at every token count
    res = results.load(frame, CONNECTORS_AXES)
    ax = next(a for a in plots.score_lines(res, "connector.tokens", "tokens", "tokens").figure.axes
              if a.get_title() == "VQA 0-shot")
    xs = [tuple(c.lines[0].get_xdata()) for c in ax.containers]
    assert len(xs) == 2 and all(a != b for a, b in zip(*xs))   # same scores, different x: both visible


def test_the_chance_label_of_the_cost_figure_sits_outside_the_points():
    frame = make_connectors_frame(seeds=(0,)).assign(**{"chance/world_vqa/0shot": 0.2,
                                                         "chance/world_textvqa/0shot": 1 / 12})
    res = results.load(frame, CONNECTORS_AXES)
    fig = plots.cost_vs_score(res).figure
    fig.canvas.draw()
    labels = [t for ax in fig.axes for t in ax.texts if (t.get_gid() or "").endswith("-label")]
    assert labels
    for ax in fig.axes:
        right = ax.get_window_extent().x1
        for text in [t for t in ax.texts if t in labels]:
            assert text.get_window_extent().x0 >= right   # right of the panel: it crosses no error bar


NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")


def _table_text(table) -> str:
    return " ".join(table.header + [line for row in table.rows for c in row.cells for line in c.lines])


def test_every_number_in_the_encoder_caption_is_in_its_table():
    for frame in (make_rich_frame(), make_connectors_frame(seeds=(0,))):
        axes = RICH_AXES if "train.seed" in frame else CONNECTORS_AXES
        meta = make_meta(swept_axes=axes) if axes is RICH_AXES else make_connectors_meta()
        table = encoder_table(results.load(frame, axes), meta)
        shown = set(NUMBER.findall(_table_text(table)))
        assert set(NUMBER.findall(table.caption)) <= shown, set(NUMBER.findall(table.caption)) - shown


def test_the_cover_names_the_machines_and_the_appendix_what_differed(tmp_path):
    frame = make_connectors_frame(seeds=(0,))
    intel = frame["connector.name"] == "attn-pool"
    frame["ablate.env.machine"] = np.where(intel, "Intel Xeon (avx512f; 2 cores, 1 thread), CPU only",
                                           "AMD EPYC (avx2; 2 cores, 1 thread), CPU only")
    frame["ablate.env.torch"] = "2.14.1"
    frame["ablate.env.commit"] = "abc1234"
    frame["ablate.env.threads"] = np.where(frame["connector.tokens"] == 64, "1", "2")
    paths = build_report(frame, {}, make_connectors_meta(), tmp_path / "out")
    with pdfplumber.open(paths.pdf) as pdf:
        text = " ".join(page.extract_text() for page in pdf.pages).replace("\n", " ")
    assert "Cells ran on AMD EPYC (avx2; 2 cores, 1 thread), CPU only (4 cells); Intel Xeon (avx512f; 2 cores, 1 " \
           "thread), CPU only (4 cells)" in text
    amd = ", ".join(frame.loc[~intel, "cell_id"])
    assert f"machine: AMD EPYC (avx2; 2 cores, 1 thread), CPU only ({amd});" in text
    one = frame.loc[frame["connector.tokens"] == 64, "cell_id"].tolist()
    assert f"torch threads: 1 ({', '.join(one)})" in text
    assert "Shared by every cell: torch 2.14.1; git commit abc1234." in text
    assert [t for d, t in _outline(paths.pdf)][-1] == "Environments"


def test_no_environment_section_without_run_records(frame_report):
    assert "Environments" not in [t for _, t in _outline(frame_report[0].pdf)]
    assert "Cells ran on" not in frame_report[2]
