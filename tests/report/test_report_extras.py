"""Round-2 report parts on a hand-made frame: per-type tables, text perplexity (lowest is bold), the encoder
pre-training table, sample predictions with thumbnails, the cover's times, the resolution figure's type row."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pdfplumber
import pytest
from PIL import Image
from report_frames import RICH_AXES, make_curves, make_frame, make_meta, make_rich_frame

from ablate.report import build_report, plots, results
from ablate.report.by_type import type_table
from ablate.report.encoders import encoder_table
from ablate.report.examples import choose, example_sets


def _predictions(tmp_path, correct_every: int) -> pd.DataFrame:
    rows = []
    for t, task in enumerate(["world_vqa", "world_textvqa"]):
        for q in range(6):
            image = tmp_path / f"{task}_{q}.png"
            if not image.exists():
                Image.new("RGB", (64, 64), (40 * q, 120, 200 - 30 * q)).save(image)
            rows.append({"task": task, "shots": 0, "id": f"{task}-{q}", "image": str(image),
                         "question": f"what is shown in picture {q}?", "prediction": "" if q == 1 else f"red{q}",
                         "references": [f"red{q}", f"red{q}"], "correct": float(q % correct_every == 0),
                         "type": ["colour", "text-small"][t]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rich")
    frame = make_rich_frame()
    preds = {"mlp64s1": _predictions(tmp, 1), "avg64s0": _predictions(tmp, 3)}
    meta = make_meta(swept_axes=RICH_AXES, elapsed_s=700.0)
    paths = build_report(frame, make_curves(frame), meta, tmp / "out", predictions=preds)
    with pdfplumber.open(paths.pdf) as pdf:
        words = [w for page in pdf.pages for w in page.extract_words(extra_attrs=["fontname"])]
        text = " ".join(page.extract_text() for page in pdf.pages).replace("\n", " ")  # wrapped lines joined
        images = sum(len(page.images) for page in pdf.pages)
    return paths, words, text, images


def _res():
    return results.load(make_rich_frame(), RICH_AXES)


def test_type_columns_are_found_in_reading_order():
    res = _res()
    assert list(res.type_metrics) == ["world_textvqa"]  # VQA has no per-type columns in this frame
    assert [m.label for m in res.type_metrics["world_textvqa"]] == [
        "text-small 0-shot", "text-large 0-shot", "all 0-shot", "ANLS 0-shot",
        "text-small 4-shot", "text-large 4-shot", "all 4-shot", "ANLS 4-shot"]
    assert [m.label for m in res.metrics][-2:] == ["Avg", "Text PPL ↓"]  # perplexity is not in the average
    assert res.runs.loc[0, "score/avg"] == pytest.approx(np.mean([0.39, 0.41, 0.44, 0.46]))


def test_type_table_values_per_setting():
    t = type_table(_res(), "world_textvqa", make_meta(swept_axes=RICH_AXES))
    assert t.slug == "types-world-textvqa" and t.header[:4] == ["Connector", "Tokens", "Resolution", "n"]
    row = {(r.cells[0].lines[0], r.cells[1].lines[0]): r for r in t.rows}
    avg64, avg144 = row[("avg-pool", "64")], row[("avg-pool", "144")]
    j = t.header.index("text-small 0-shot")
    # avg-pool at resolution 96: TextVQA 0-shot 45 ± 1.4; small text 10 points lower, large 10 higher
    assert avg64.cells[j].lines[0] == "35.0 ± 1.4" and avg64.cells[j + 1].lines[0] == "55.0 ± 1.4"
    assert avg64.cells[j + 2].lines[0] == "45.0 ± 1.4" and avg64.cells[j + 3].lines[0] == "48.0 ± 1.4"
    assert avg144.cells[j].lines[:2] == ["51.0 ± 1.4", "Δ +16.0"]  # at 192 px small text catches up: best
    assert avg144.cells[j].bold and not avg64.cells[j].bold
    assert "Questions per type: text-small 24, text-large 24" in t.caption
    assert t.data.loc[0, "text-small 0-shot"] == pytest.approx(35.0)


def test_lowest_perplexity_is_bold_in_pdf(rich):
    paths, words, text, _ = rich
    assert "Text PPL ↓" in text
    assert "lower is better" in text

    def fonts(token):
        return {w["fontname"] for w in words if w["text"] == token}

    # connector table: avg-pool averages rows 0-3 (3.0 .. 3.3) -> 3.15, the lowest; mlp only rows 8-9 -> 3.85
    assert fonts("3.15") and all("Bold" in f for f in fonts("3.15"))
    assert fonts("3.85") and not any("Bold" in f for f in fonts("3.85"))
    csv = paths.tables["connector-name"].csv.read_text()
    assert "Text PPL ↓" in csv and "3.15" in csv  # exported as is, not x100


def test_encoder_table_comes_first_with_multiples_of_chance(rich):
    paths, _, text, _ = rich
    t = encoder_table(_res(), make_meta(swept_axes=RICH_AXES))
    assert t.rows[0].cells[0].lines == ["zoo:clip-s"]
    cells = {h: c.lines for h, c in zip(t.header, t.rows[0].cells)}
    assert cells["Zero-shot top-1"] == ["14.8", "38× chance"]
    assert cells["Probe top-1"] == ["10.5", "27× chance"]
    assert cells["Chance"] == ["0.4"] and cells["Held-out pairs"] == ["256"]
    assert cells["Pre-training loss"] == ["4.16 → 1.78"]
    assert text.index("Encoder pre-training") < text.index("Results by axis") < text.index("by question type")
    assert "38× chance" in text and "encoders" in paths.tables


def test_encoder_table_shows_reading_per_trained_resolution_when_logged():
    frame = make_rich_frame()
    frame["encoder/read_top1_96_large"], frame["encoder/read_top1_96_small"] = 0.478, 0.205
    frame["encoder/read_top1_160_large"], frame["encoder/read_top1_160_small"] = 0.53, 0.434
    t = encoder_table(results.load(frame, RICH_AXES), make_meta(swept_axes=RICH_AXES))
    cells = {h: c.lines for h, c in zip(t.header, t.rows[0].cells)}
    assert cells["Reads at 96 px, large / small"] == ["47.8 / 20.5"]
    assert cells["Reads at 160 px, large / small"] == ["53.0 / 43.4"]
    assert t.header.index("Reads at 96 px, large / small") < t.header.index("Reads at 160 px, large / small")
    assert t.data["read 160 px small"].iloc[0] == pytest.approx(43.4)
    assert "reading head" in t.caption
    plain = encoder_table(_res(), make_meta(swept_axes=RICH_AXES))
    assert not any(h.startswith("Reads") for h in plain.header) and "reading head" not in plain.caption


def test_encoder_table_shows_a_dash_for_an_encoder_that_was_not_pretrained():
    frame = make_rich_frame()
    untrained = frame.index % 2 == 1                  # zoo:random-s logs retrieval but no pre-training loss
    frame.loc[untrained, "encoder.name"] = "zoo:random-s"
    frame.loc[untrained, ["encoder/loss_first", "encoder/loss_last"]] = np.nan
    frame["encoder/steps"] = np.where(untrained, 0.0, 200.0)
    t = encoder_table(results.load(frame, RICH_AXES), make_meta(swept_axes=RICH_AXES))
    losses = {row.cells[0].lines[0]: row.cells[t.header.index("Pre-training loss")].lines for row in t.rows}
    assert losses == {"zoo:clip-s": ["4.16 → 1.78", "200 steps"], "zoo:random-s": ["—", "0 steps"]}


def test_no_encoder_table_without_encoder_metrics():
    assert encoder_table(results.load(make_frame(), RICH_AXES[:2]), make_meta()) is None


def test_sample_predictions_best_and_worst(rich, tmp_path):
    _, _, text, images = rich
    assert "Best cell: Connector = mlp, Tokens = 64, Resolution = 96, seed 1" in text
    assert "Worst cell: Connector = avg-pool, Tokens = 64, Resolution = 96, seed 0" in text
    assert "(empty)" in text and "correct" in text and "wrong" in text
    assert images >= 16  # a thumbnail per example, 8 per cell
    res = _res()
    sets = example_sets(res, {"mlp64s1": _predictions(tmp_path, 1), "avg64s0": _predictions(tmp_path, 3)})
    assert [len(s.examples) for s in sets] == [8, 8]
    assert sum(e.verdict == "correct" for e in sets[0].examples) == 8   # every logged answer right
    assert "drawn at random (seed 0)" in sets[0].caption and "8 of 8 shown are correct" in sets[0].caption
    missing = _predictions(tmp_path, 2).assign(image="/nowhere/x.png")
    only = example_sets(res, {"mlp64s1": missing})
    assert len(only) == 1 and only[0].examples[0].image is None  # worst cell has no table: best only
    assert example_sets(res, None) == []

    # a blind evaluation's predictions (images shuffled among the questions) are a control, not the cell's answers
    with_blind = _predictions(tmp_path, 1)
    with_blind = pd.concat([with_blind, with_blind.assign(task=with_blind["task"] + "_blind")], ignore_index=True)
    shown = example_sets(res, {"mlp64s1": with_blind})[0].examples
    assert len(shown) == 8 and not any("blind" in e.task.lower() for e in shown)


def _graded(n: int = 20) -> pd.DataFrame:
    """Two tasks of `n` questions each, every other one right."""
    return pd.DataFrame([{"task": t, "shots": 0, "id": str(q), "correct": float(q % 2)}
                         for t in ("world_vqa", "world_textvqa") for q in range(n)])


def test_choose_draws_at_the_cells_accuracy_per_task():
    frame = _graded()
    right = {(r.task, r.shots, r.id): r.correct for r in frame.itertuples()}
    keys = choose(frame, 8, {("world_vqa", 0): 0.25, ("world_textvqa", 0): 0.75})
    assert [k[0] for k in keys].count("world_vqa") == 4 and [k[0] for k in keys].count("world_textvqa") == 4
    assert sum(right[k] for k in keys if k[0] == "world_vqa") == 1      # 4 x 25 %
    assert sum(right[k] for k in keys if k[0] == "world_textvqa") == 3  # 4 x 75 %
    assert len(set(keys)) == 8
    assert choose(frame, 8, {("world_vqa", 0): 0.25}) == choose(frame, 8, {("world_vqa", 0): 0.25})  # seeded
    assert choose(frame, 8, seed=1) != choose(frame, 8, seed=2)   # a draw, not the first rows


def test_choose_without_scores_follows_the_logged_sample():
    frame = _graded().assign(correct=lambda f: (f["id"].astype(int) < 5).astype(float))  # 5 of 20 right: 25 %
    keys = choose(frame, 8)
    right = {(r.task, r.shots, r.id): r.correct for r in frame.itertuples()}
    assert sum(right[k] for k in keys) == 2   # round(4 x 0.25) = 1 per task


def test_a_full_tie_for_the_best_is_bold_in_every_row():
    frame = make_frame()
    frame["score/world_vqa/0shot"] = frame["score/world_vqa/0shot"].where(frame["status"] != "FINISHED", 0.0)
    res = results.load(frame, RICH_AXES[:2])
    from ablate.report.tables import axis_table

    t = axis_table(res, "connector.name", make_meta())
    j = t.header.index("VQA 0-shot")
    scored = [r for r in t.rows if r.kind in ("row", "baseline")]
    assert len(scored) == 3 and all(r.cells[j].bold for r in scored)  # every row ties for the best: all bold
    low = frame.assign(**{"ci_low/world_vqa/0shot": -0.02})
    t = axis_table(results.load(low, RICH_AXES[:2]), "connector.name", make_meta())
    assert t.rows[0].cells[j].lines[-1].startswith("[0.0, ")  # an interval never leaves 0..100%


def test_cover_times(rich):
    text = rich[2]
    assert "31 min 40 s summed over cells; 11 min 40 s from the first cell's start to the last one's end" in text
    assert "(median training 1 min 00 s, evaluation 30 s" in text


def test_resolution_figure_has_a_row_per_typed_task():
    fig = next(p for p in plots.all_plots(_res(), {}) if p.slug == "resolution")
    titles = [ax.get_title() for ax in fig.figure.axes]
    assert "TextVQA 0-shot, by question type" in titles and "TextVQA 4-shot, by question type" in titles
    ax = next(a for a in fig.figure.axes if a.get_title() == "TextVQA 0-shot, by question type")
    lines = {c.get_label(): c.lines[0].get_ydata() for c in ax.containers}
    # small text: mean over settings at 96 px (35, 37, 45 -> 39) then 192 px (51)
    assert list(lines) == ["text-small", "text-large"]
    assert np.allclose(lines["text-small"], [39.0, 51.0]) and np.allclose(lines["text-large"], [59.0, 51.0])


def test_report_without_any_score_column(tmp_path):
    """A grid whose cells all failed before evaluating logs no score column: the report still says why."""
    frame = make_frame()[["cell_id", "connector.name", "connector.tokens", "seed", "status", "failure"]]
    frame = frame.assign(status="FAILED", failure="TypeError: MLLM.__init__() missing 1 required argument")
    paths = build_report(frame, {}, make_meta(), tmp_path)
    with pdfplumber.open(paths.pdf) as pdf:
        text = "\n".join(p.extract_text() for p in pdf.pages)
    assert "12 cells: 0 finished, 12 failed" in text and "MLLM.__init__() missing" in text


def test_values_that_print_the_same_are_equally_bold():
    frame = make_rich_frame()
    done = frame["status"] == "FINISHED"
    frame.loc[done, "text/perplexity"] = 2.85 + 0.001 * (frame.loc[done, "connector.name"] != "avg-pool")
    from ablate.report.tables import axis_table

    t = axis_table(results.load(frame, RICH_AXES), "connector.name", make_meta())
    j = t.header.index("Text PPL ↓")
    scored = [r for r in t.rows if r.kind in ("row", "baseline")]
    assert [r.cells[j].lines[0] for r in scored] == ["2.85 ± 0.00"] * 3  # replicates: ± seed sd
    assert all(r.cells[j].bold for r in scored)  # a full tie as printed: every one is the best...
    frame.loc[frame["connector.name"] == "mlp", "text/perplexity"] = 4.0
    t = axis_table(results.load(frame, RICH_AXES), "connector.name", make_meta())
    bold = [r.cells[j].bold for r in t.rows if r.kind in ("row", "baseline")]
    assert bold == [True, True, False]  # ...and 2.850 / 2.851 both read 2.85: both bold
