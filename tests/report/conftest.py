"""Fixtures of the report tests, two reports built once per test run among them; their helpers: report_frames.py."""
from __future__ import annotations

import pandas as pd
import pdfplumber
import pytest
from report_frames import (
    injected_frame,
    make_connectors_curves,
    make_connectors_meta,
    make_curves,
    make_frame,
    make_meta,
    overflow,
    with_empty,
)

from ablate.report import ReportMeta, build_report


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture
def meta() -> ReportMeta:
    return make_meta()


@pytest.fixture(scope="session")
def frame_report(tmp_path_factory):
    """The report of `make_frame` with its loss curves and the empty-prediction shares of `with_empty`
    (test_report_pdf, test_report_empty), and its PDF read back once: (paths, words with their font, text,
    characters off the page)."""
    frame = with_empty(make_frame())
    paths = build_report(frame, make_curves(frame), make_meta(), tmp_path_factory.mktemp("report"))
    with pdfplumber.open(paths.pdf) as pdf:
        words = [w for page in pdf.pages for w in page.extract_words(extra_attrs=["fontname"])]
        text = "\n".join(page.extract_text() for page in pdf.pages)
        off = overflow(pdf)
    return paths, words, text, off


@pytest.fixture(scope="session")
def connectors_report(tmp_path_factory):
    """The report of the connectors-shaped frame with known scores (`injected_frame`): test_report_findings reads
    its findings, test_report_trust its cover and HTML table of contents."""
    frame = injected_frame()
    return build_report(frame, make_connectors_curves(frame), make_connectors_meta(),
                        tmp_path_factory.mktemp("connectors") / "connectors")
