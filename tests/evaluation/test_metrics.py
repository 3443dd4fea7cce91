"""Scores on known answers give exact values; bootstrap intervals contain the score and shrink with n."""
import numpy as np
import pytest

from ablate.evaluation import metrics


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [("Two", "2"), ("a red", "red"), ("Red.", "red"), ("the dog", "dog"), ("dont", "don't"), ("  Blue  ", "blue")],
)
def test_normalisation_makes_equivalent_answers_match(prediction, reference):
    assert metrics.vqa_accuracy(prediction, [reference]) == 1.0
    assert metrics.exact_match(prediction, [reference]) == 1.0


def test_vqa_accuracy_with_ten_answers_is_the_leave_one_out_formula():
    answers = ["2"] * 3 + ["3"] * 7
    # 3 matches: 3 subsets keep 2 of them (2/3), 7 subsets keep all 3 (1.0) -> (3 * 2/3 + 7) / 10
    assert metrics.vqa_accuracy("two", answers) == pytest.approx(0.9)
    assert metrics.vqa_accuracy("3", answers) == pytest.approx(1.0)
    one = ["cat"] + ["dog"] * 9  # 1 match: 9 subsets keep it (1/3), 1 drops it (0)
    assert metrics.vqa_accuracy("cat", one) == pytest.approx(9 / 10 / 3)
    two = ["cat"] * 2 + ["dog"] * 8  # 2 matches: 8 subsets with 2 (2/3), 2 with 1 (1/3)
    assert metrics.vqa_accuracy("cat", two) == pytest.approx((8 * 2 / 3 + 2 / 3) / 10)
    assert metrics.vqa_accuracy("bird", answers) == 0.0


def test_fewer_than_ten_answers_is_exact_match_against_any():
    assert metrics.vqa_accuracy("blue", ["red", "blue"]) == 1.0
    assert metrics.vqa_accuracy("green", ["red", "blue"]) == 0.0
    with pytest.raises(ValueError):
        metrics.vqa_accuracy("red", [])


def test_anls_values():
    assert metrics.anls("hello", ["hello"]) == 1.0
    assert metrics.anls("helo", ["hello"]) == pytest.approx(1 - 1 / 5)
    assert metrics.anls("xyz", ["hello"]) == 0.0  # below the 0.5 threshold


def test_cider_rewards_the_matching_caption_and_mean_is_corpus_score():
    refs = [["a red square", "a plain red image"], ["a blue circle", "one blue circle"], ["a green cross"]]
    score, per_item = metrics.cider(["a red square", "a yellow star", "a green cross"], refs)
    assert per_item[0] > 1.0 and per_item[1] == 0.0 and per_item[2] > 1.0
    assert score == pytest.approx(per_item.mean())


def test_bootstrap_interval_contains_score_shrinks_with_n_and_is_seeded():
    rng = np.random.default_rng(1)
    small = rng.random(40) < 0.6
    large = rng.random(4000) < 0.6
    lo_s, hi_s = metrics.bootstrap_ci(small, 1000, seed=0)
    lo_l, hi_l = metrics.bootstrap_ci(large, 1000, seed=0)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5  # width ~ 1/sqrt(n): 100x the questions, ~10x narrower
    assert metrics.bootstrap_ci(small, 1000, seed=0) == (lo_s, hi_s)
    # a binomial proportion: the interval is about mean +- 1.96 * sqrt(p(1-p)/n)
    p = large.mean()
    half = 1.96 * np.sqrt(p * (1 - p) / large.size)
    assert hi_l - lo_l == pytest.approx(2 * half, rel=0.15)


def test_bootstrap_degenerate_cases():
    assert metrics.bootstrap_ci([1.0, 1.0, 1.0], 100) == (1.0, 1.0)
    assert metrics.bootstrap_ci([0.5], 100) == (0.5, 0.5)
    assert metrics.bootstrap_ci([0.0, 1.0], 0) == (0.5, 0.5)
    assert all(np.isnan(metrics.bootstrap_ci([], 100)))
