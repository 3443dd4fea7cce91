"""The share of empty predictions per task, per setting: computed from known shares, shown in the report."""
import pytest
from report_frames import make_frame, make_meta, with_empty

from ablate.report import results
from ablate.report.empty import empty_table


@pytest.fixture
def table():
    return empty_table(results.load(with_empty(make_frame()), make_meta().swept_axes), make_meta())


def test_empty_share_per_setting_is_the_mean_of_its_seeds(table):
    data = table.data.set_index(["Connector", "Tokens"])
    assert table.header[2:] == ["VQA 0-shot", "VQA 4-shot", "TextVQA 0-shot", "TextVQA 4-shot"]
    assert data.loc[("avg-pool", "64"), "VQA 0-shot"] == pytest.approx(25.0)
    assert data.loc[("mlp", "64"), "TextVQA 4-shot"] == pytest.approx(75.0)
    assert data.loc[("c-abstractor", "64"), "VQA 4-shot"] == 0.0
    assert data.loc[("mlp", "144"), "status"].startswith("failed")


def test_cells_above_half_are_bold_and_the_unknown_token_row_is_last(table):
    mlp = next(r for r in table.rows if [c.lines[0] for c in r.cells[:2]] == ["mlp", "64"])
    assert [c.lines for c in mlp.cells[2:]] == [["75.0"]] * 4 and all(c.bold for c in mlp.cells[2:])
    last = table.rows[-1]
    assert last.kind == "reference" and last.cells[0].lines == ["Unknown tokens"]
    assert [c.lines for c in last.cells[2:]] == [["—"], ["—"], ["12.5"], ["12.5"]]


def test_no_table_for_runs_that_did_not_log_it():
    assert empty_table(results.load(make_frame(), make_meta().swept_axes), make_meta()) is None


def test_the_report_shows_the_empty_predictions(frame_report):
    paths, _, text, _ = frame_report     # the report of with_empty(make_frame())
    assert "empty" in paths.tables
    md = paths.tables["empty"].md.read_text()
    assert "Empty predictions" in md and "75.0" in md
    assert "Empty predictions" in paths.html.read_text()
    assert "Empty predictions" in text and "Unknown tokens" in text
