"""The whole report: files, names, the PDF read back (text, bold fonts, nothing off the page), HTML, figures."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pdfplumber
import pytest
from report_frames import make_curves, make_frame, make_meta, overflow

from ablate.report import build_report

STEM = "mm1-table-2-connectors-tokens"


@pytest.fixture
def report(frame_report):
    return frame_report[0]


@pytest.fixture
def words(frame_report):
    return frame_report[1]


def _text(path):
    with pdfplumber.open(path) as pdf:
        return "\n".join(page.extract_text() for page in pdf.pages)


def test_file_names_are_sanitised(report):
    names = sorted(p.name for p in report.all())
    assert all(re.fullmatch(r"[a-z0-9._-]+", n) for n in names)
    assert report.pdf.name == f"{STEM}_report.pdf" and report.html.name == f"{STEM}_report.html"
    assert set(report.tables) == {"connector-name", "connector-tokens", "empty", "full", "runs"}  # empty: logged
    assert report.tables["full"].tex.name == f"{STEM}_table_full.tex"
    # the grid has tokens and connectors but no resolution or mixture axis
    assert set(report.figures) == {"tokens", "cost", "loss"}
    assert all(p.exists() and p.stat().st_size > 0 for p in report.all())


def test_pdf_text_has_cover_values_and_status_rows(frame_report):
    text = frame_report[2]
    for needle in ["MM1 Table 2: connectors / tokens", "grids/mm1_connectors.yaml", "abc1234", "1x NVIDIA H100 80GB",
                   "31 min 40 s", "12 cells: 8 finished, 2 failed, 2 missing (1 running, 1 pending)",
                   "43.0 ± 1.4", "50.0 ± 1.4", "Δ −1.0", "Δ +7.0", "[47.1, 52.9]", "VQA 0-shot", "TextVQA",
                   "failed (seed 0, 1): RuntimeError: CUDA out of memory", "missing (seed 0): running",
                   "missing (seed 1): pending", "mlp144s0", "1.2M", "158–356 MFLOPs",
                   "Table 4. All settings"]:  # Table 3: the empty predictions
        assert needle in text, needle


def test_best_value_is_bold_and_others_are_not(words):
    def fonts(token):
        return {w["fontname"] for w in words if w["text"] == token}

    assert fonts("55.0") and all("Bold" in f for f in fonts("55.0"))  # mlp TextVQA 0-shot: best everywhere
    assert fonts("47.0") and not any("Bold" in f for f in fonts("47.0"))  # never best
    assert all("DejaVuSans" in w["fontname"] for w in words)  # the embedded font, so ± and Δ print


def _overflow(path):
    with pdfplumber.open(path) as pdf:
        return overflow(pdf)


def test_nothing_runs_off_the_page(frame_report):
    assert frame_report[3] == []


@pytest.mark.slow
def test_wide_table_is_fitted_or_split(tmp_path):
    frame = make_frame()
    rng = np.random.default_rng(0)
    for t in ["world_vqa", "world_textvqa", "world_caption", "okvqa", "vizwiz", "gqa"]:
        for k in (0, 4, 8):
            frame[f"score/{t}/{k}shot"] = rng.uniform(0.2, 0.8, len(frame))
            frame[f"ci_low/{t}/{k}shot"] = frame[f"score/{t}/{k}shot"] - 0.02
            frame[f"ci_high/{t}/{k}shot"] = frame[f"score/{t}/{k}shot"] + 0.02
    paths = build_report(frame, {}, make_meta(grid_name="wide"), tmp_path)
    assert _overflow(paths.pdf) == []
    text = _text(paths.pdf)
    assert "(part 1 of" in text and "GQA 8-shot" in text
    with pdfplumber.open(paths.pdf) as pdf:
        assert any(p.width > p.height for p in pdf.pages)  # landscape pages for the wide tables
    assert "loss" not in paths.figures  # no curves, no loss figure


@pytest.mark.slow
def test_mixture_and_resolution_figures_when_axes_exist(tmp_path):
    frame = make_frame()
    frame["data.mixture"] = [{"caption": 1.0} if i % 2 else {"caption": 0.5, "text": 0.5} for i in range(len(frame))]
    frame["encoder.resolution"] = [96 if i % 4 < 2 else 192 for i in range(len(frame))]
    meta = make_meta(swept_axes=["connector.name", "connector.tokens", "encoder.resolution", "data.mixture"])
    paths = build_report(frame, make_curves(frame), meta, tmp_path)
    assert {"tokens", "resolution", "mixture", "cost", "loss"} <= set(paths.figures)
    assert "Data mixture" in _text(paths.pdf) and "caption 50 / text 50" in _text(paths.pdf)


def test_html_is_self_contained_and_matches(report):
    html = report.html.read_text()
    assert html.count("data:image/png;base64,") == len(report.figures)
    assert "<strong>50.0 ± 1.4</strong>" in html and "CUDA out of memory" in html
    assert not re.search(r'src="(?!data:)', html)


def test_exports_on_disk(report):
    assert "**50.0 ± 1.4**" in report.tables["connector-name"].md.read_text()
    assert r"\textbf{50.0 $\pm$ 1.4}" in report.tables["connector-name"].tex.read_text()
    assert "CUDA out of memory" in report.tables["full"].csv.read_text()


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
def test_first_page_renders(report, tmp_path):
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", str(report.pdf), str(tmp_path / "p")],
                   check=True)
    from PIL import Image

    png = next(tmp_path.glob("p*.png"))
    im = np.asarray(Image.open(png).convert("L"))
    assert im.shape[0] > im.shape[1] and (im < 128).mean() > 0.01  # portrait, with ink on it


def test_degenerate_grids_still_report(tmp_path):
    frame = make_frame()
    only_mlp = build_report(frame[frame["connector.name"] == "mlp"], {}, make_meta(swept_axes=[]), tmp_path / "a")
    assert set(only_mlp.tables) == {"full", "runs"} and "all runs" in _text(only_mlp.pdf)
    failed = build_report(frame.assign(status="FAILED"), {}, make_meta(), tmp_path / "b")
    assert failed.figures == {}  # nothing finished: no score figure drawn empty
    assert "12 cells: 0 finished, 12 failed" in _text(failed.pdf)
