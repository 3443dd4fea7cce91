"""Does the image matter: paired intervals over shared questions, the blind gap, answers that collapse to one."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ablate.report import findings, image, paired
from ablate.report import stats as st
from ablate.report.results import load

N = 300   # questions every cell answers


def _cell_frame(correct: dict[str, dict[str, np.ndarray]], answers: dict[str, dict[str, list[str]]],
                types: list[str]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """A results frame of cells `connector.name` = each key (one seed) with world_vqa and its blind evaluation, and
    each run's per-question rows (`questions.json`)."""
    rows, questions = [], {}
    for name, tasks in correct.items():
        row = {"cell_id": f"c-{name}", "status": "FINISHED", "connector.name": name, "seed": 0}
        per_q = []
        for task, x in tasks.items():
            row[f"score/{task}/0shot"] = float(x.mean())
            half = 1.96 * float(x.std()) / np.sqrt(len(x))
            row[f"ci_low/{task}/0shot"], row[f"ci_high/{task}/0shot"] = x.mean() - half, x.mean() + half
            for qtype in sorted(set(types)):
                mask = np.array(types) == qtype
                row[f"score/{task}/0shot/{qtype}"] = float(x[mask].mean())
            per_q += [{"task": task, "shots": 0, "id": f"q{i:04d}", "type": types[i],
                       "prediction": answers[name][task][i], "correct": float(x[i])} for i in range(len(x))]
        rows.append(row)
        questions[f"c-{name}"] = pd.DataFrame(per_q)
    return pd.DataFrame(rows), questions


def test_a_paired_bootstrap_matches_a_hand_computation_on_shared_questions():
    rng = np.random.default_rng(1)
    a = (rng.random(N) < 0.6).astype(float)
    b = np.where(rng.random(N) < 0.8, a, 1 - a)          # the same questions, mostly the same answers
    s = st.paired([(1.0, [a]), (-1.0, [b])])
    d = a - b
    idx = np.random.default_rng(st.BOOTSTRAP_SEED).integers(0, N, size=(st.BOOTSTRAP, N))
    assert s.mean == pytest.approx(d.mean())
    assert s.se == pytest.approx(np.std(d[idx].mean(axis=1), ddof=1))     # the bootstrap, by hand
    assert s.se == pytest.approx(d.std() / np.sqrt(N), rel=0.08)          # and its large-sample value
    independent = np.sqrt(a.var() / N + b.var() / N)
    assert s.se < 0.75 * independent    # shared questions are not counted as independent
    # a mean over 4 cells answering the same questions: the questions' noise does not shrink by sqrt(4)
    cells = [np.where(rng.random(N) < 0.9, a, 1 - a) for _ in range(4)]
    mean = st.paired([(0.25, [c]) for c in cells])
    pooled = np.mean(cells, axis=0)
    assert mean.se == pytest.approx(pooled.std() / np.sqrt(N), rel=0.08)
    assert mean.se > 1.5 * np.sqrt(sum(c.var() / N for c in cells)) / 4   # the old sqrt(k) division
    # two seeds: the seed spread of the difference is added to the questions' noise
    a2, b2 = np.roll(a, 7), np.roll(b, 3)
    two = st.paired([(1.0, [a, a2]), (-1.0, [b, b2])])
    per_seed = [a.mean() - b.mean(), a2.mean() - b2.mean()]
    d2 = (a + a2) / 2 - (b + b2) / 2
    se_q = np.std(d2[idx].mean(axis=1), ddof=1)
    assert two.se == pytest.approx(np.sqrt(se_q**2 + np.std(per_seed, ddof=1) ** 2 / 2))


def test_a_model_that_ignores_the_image_has_a_gap_inside_the_noise_and_one_that_reads_it_outside():
    rng = np.random.default_rng(2)
    types = ["colour"] * N
    blind_eyed = (rng.random(N) < 0.3).astype(float)       # the same answers whatever the image
    seeing, shuffled = (rng.random(N) < 0.7).astype(float), (rng.random(N) < 0.3).astype(float)
    words = {t: [str(i % 5) for i in range(N)] for t in ("world_vqa", "world_vqa_blind")}
    frame, questions = _cell_frame({"ignores": {"world_vqa": blind_eyed, "world_vqa_blind": blind_eyed},
                                    "reads": {"world_vqa": seeing, "world_vqa_blind": shuffled}},
                                   {"ignores": words, "reads": words}, types)
    results = load(frame, ["connector.name"], {}, questions)
    [(m, blind)] = image.pairs(results)
    assert blind.task == "world_vqa_blind" and [x.task for x in results.score_metrics] == ["world_vqa"]
    ignores, is_paired = image.gap(results, [("ignores",)], m, blind)
    assert is_paired and ignores.mean == 0 and ignores.ci[0] <= 0 <= ignores.ci[1]
    reads, _ = image.gap(results, [("reads",)], m, blind)
    assert reads.mean == pytest.approx(seeing.mean() - shuffled.mean()) and reads.ci[0] > 0
    assert not any("do not depend on the image" in line for line in image.lines(results))
    only_ignores = load(frame[frame["connector.name"] == "ignores"], ["connector.name"], {}, questions)
    assert any("do not depend on the image" in line for line in findings.findings(only_ignores)[0])
    table = image.image_table(only_ignores, None)
    assert table.data.loc[0, "VQA 0-shot image adds"] == 0.0


def test_a_blind_task_stays_out_of_avg():
    rng = np.random.default_rng(3)
    x, y = (rng.random(N) < 0.5).astype(float), (rng.random(N) < 0.1).astype(float)
    words = {t: ["a"] * N for t in ("world_vqa", "world_vqa_blind")}
    frame, questions = _cell_frame({"one": {"world_vqa": x, "world_vqa_blind": y}}, {"one": words}, ["t"] * N)
    results = load(frame, ["connector.name"], {}, questions)
    assert results.runs["score/avg"].iloc[0] == pytest.approx(x.mean())


def test_one_constant_answer_raises_the_finding():
    types = ["colour"] * (N // 2) + ["shape"] * (N // 2)
    rng = np.random.default_rng(4)
    x = (rng.random(N) < 0.2).astype(float)
    constant = {"world_vqa": ["red"] * (N // 2) + [f"s{i % 4}" for i in range(N // 2)],
                "world_vqa_blind": ["red"] * N}
    frame, questions = _cell_frame({"a": {"world_vqa": x, "world_vqa_blind": x},
                                    "b": {"world_vqa": x, "world_vqa_blind": x}}, {"a": constant, "b": constant},
                                   types)
    results = load(frame, ["connector.name"], {}, questions)
    lines, _ = findings.findings(results)
    collapse = [line for line in lines if "collapse to one" in line]
    assert len(collapse) == 1 and "colour “red” (2 of 2 runs)" in collapse[0] and "shape" not in collapse[0]
    assert lines.index(collapse[0]) < 2        # at the top, with the image's other finding
    assert paired.top_answer(results, "c-a", "world_vqa", 0, "colour") == ("red", 1.0, N // 2)
    table = image.answers_table(results)
    assert list(table.data["Runs giving one answer"]) == ["2 of 2", "0 of 2"]


def test_without_per_question_scores_the_gap_falls_back_on_the_runs_intervals():
    x = np.r_[np.ones(N // 2), np.zeros(N // 2)]
    words = {t: ["a"] * N for t in ("world_vqa", "world_vqa_blind")}
    frame, _ = _cell_frame({"one": {"world_vqa": x, "world_vqa_blind": np.zeros(N)}}, {"one": words}, ["t"] * N)
    results = load(frame, ["connector.name"], {})
    g, is_paired = image.gap(results, [("one",)], *image.pairs(results)[0])
    assert not is_paired and g.mean == pytest.approx(0.5) and g.ci[0] > 0
    assert image.answers_table(results) is None


def test_a_non_factorial_grid_compares_matched_cells_only_and_names_the_rest():
    """An include adds resolution 128 at tokens 64 only: the base cells carry their base value 96 (never nan), the
    resolution table compares 96 with 128 at tokens 64 alone, and says which cell has no matched partner."""
    from report_frames import make_meta

    from ablate.report.tables import axis_table

    scores = {(16, 96): 0.30, (64, 96): 0.40, (64, 128): 0.45}
    frame = pd.DataFrame([{"cell_id": f"c{t}-{r}", "status": "FINISHED", "connector.tokens": t,
                           "encoder.resolution": r, "seed": 0, "score/world_textvqa/0shot": v,
                           "ci_low/world_textvqa/0shot": v - 0.02, "ci_high/world_textvqa/0shot": v + 0.02}
                          for (t, r), v in scores.items()])
    meta = make_meta(swept_axes=["connector.tokens", "encoder.resolution"], fixed={})
    results = load(frame, meta.swept_axes, meta.fixed)
    assert results.values["encoder.resolution"] == ["96", "128"]
    table = axis_table(results, "encoder.resolution", meta)
    assert list(table.data["TextVQA 0-shot"])[:2] == [40.0, 45.0]          # not (30 + 40) / 2 = 35 for 96
    assert list(table.data["TextVQA 0-shot delta"])[:2] == [0.0, 5.0]
    assert "Matched cells only" in table.caption and "connector.tokens = 64" in table.caption
    assert any("connector.tokens = 16, encoder.resolution = 96" in note for note in table.footnotes)
    (effect,) = [e for e in findings.effects(results, meta) if e.axis == "encoder.resolution"]
    assert effect.diff.mean == pytest.approx(0.05)                          # the table's Δ, the same number
    tokens = axis_table(results, "connector.tokens", meta)
    assert list(tokens.data["TextVQA 0-shot"])[:2] == [30.0, 40.0]          # at resolution 96, matched


def test_a_setting_most_of_whose_cells_give_one_answer_did_not_learn_though_above_chance():
    rng = np.random.default_rng(5)
    rows, questions = [], {}
    for name in ("a", "b"):
        for tokens in (1, 2, 3, 4):
            constant = name == "a" and tokens < 4
            x = (rng.random(N) < (0.2 if constant else 0.8)).astype(float)
            cid = f"{name}{tokens}"
            rows.append({"cell_id": cid, "status": "FINISHED", "connector.name": name, "connector.tokens": tokens,
                         "seed": 0, "score/world_vqa/0shot": x.mean(), "ci_low/world_vqa/0shot": x.mean() - 0.03,
                         "ci_high/world_vqa/0shot": x.mean() + 0.03, "chance/world_vqa": 0.1})
            said = ["red"] * N if constant else [f"w{i % 7}" for i in range(N)]
            questions[cid] = pd.DataFrame({"task": "world_vqa", "shots": 0, "id": [f"q{i}" for i in range(N)],
                                           "type": "colour", "prediction": said, "correct": x})
    results = load(pd.DataFrame(rows), ["connector.name", "connector.tokens"], {}, questions)
    assert not findings.at_chance(results)            # its mean, and each of its cells, clear chance
    lines = findings.findings(results)[0]
    assert any(line.startswith("world_vqa: 3 of 8 cells did not learn it") for line in lines)
    assert "connector.name = a did not learn world_vqa: 3 of its 4 cells did not" in " | ".join(lines)
    assert not any(line.startswith("connector.name = b did not learn") for line in lines)


@pytest.mark.parametrize("ppl, bold", [((78_000.0, 155_000.0), False), ((2.5, 3.1), True)])
def test_text_ppl_shows_its_references_and_bolds_no_best_far_above_the_lms_own(ppl, bold):
    from report_frames import make_meta

    from ablate.report.tables import axis_table

    frame = pd.DataFrame([{"cell_id": f"c{t}", "status": "FINISHED", "connector.tokens": t, "seed": 0,
                           "score/world_textvqa/0shot": 0.2, "text/perplexity": p, "llm/heldout_ppl": 1.86,
                           "text/perplexity_uniform": 631.0} for t, p in zip((16, 64), ppl)])
    meta = make_meta(swept_axes=["connector.tokens"], fixed={})
    table = axis_table(load(frame, meta.swept_axes, meta.fixed), "connector.tokens", meta)
    j = table.header.index("Text PPL ↓")
    refs = {r.cells[0].lines[0]: r.cells[j].lines[0] for r in table.rows if r.kind == "reference"}
    assert refs == {"Chance": "631", "Task baseline": "1.86"}
    assert table.rows[0].cells[j].bold is bold
    assert any("no value is bold" in note and "1.86" in note for note in table.footnotes) is not bold


def test_a_custom_task_marked_control_stays_out_of_avg_and_shows_beside_the_blind_gap():
    frame = pd.DataFrame([{"cell_id": f"c{t}", "status": "FINISHED", "connector.tokens": t, "seed": 0,
                           "score/mine/0shot": 0.6, "score/swapped/0shot": 0.5, "control/swapped": 1.0}
                          for t in (16, 64)])
    results = load(frame, ["connector.tokens"], {})
    assert [m.task for m in results.score_metrics] == ["mine"] and results.controls[0].task == "swapped"
    assert list(results.runs["score/avg"]) == [0.6, 0.6]
    table = image.image_table(results, None)
    assert table.header == ["Tokens", "swapped 0-shot (control)"]
    assert list(table.data["swapped 0-shot (control)"]) == [50.0, 50.0, 50.0]
