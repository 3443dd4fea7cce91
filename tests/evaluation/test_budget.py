"""The generation-budget warning: reference answers longer than eval.max_new_tokens in the LLM's tokens."""
import json
import subprocess
import sys

import pytest

from ablate.config.schema import CellConfig
from ablate.evaluation import budget
from ablate.world import vocab


class Letters:
    """A tokenizer of one token per letter (the leading space is not a token)."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(text.strip())}


def test_the_share_of_questions_no_reference_of_which_fits():
    answers = [["red"], ["umbrella"], ["4", "four"], ["butterfly", "moth"]]
    share, longest, n = budget.long_answers(Letters(), answers, budget=4)
    assert share == pytest.approx(1 / 4) and (longest, n) == ("butterfly", 9)   # "moth" fits: the question does


def test_a_custom_tasks_long_answers_are_named_with_the_budget_that_reaches_them(tmp_path):
    rows = [{"image": "a.png", "question": "?", "answers": [a]} for a in ["yes", "no", "umbrella", "yes"]]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cell = CellConfig(eval={"tasks": ["mine"], "max_new_tokens": 4,
                            "custom_tasks": [{"name": "mine", "path": str(tmp_path / "q.jsonl")}]})
    (line,) = budget.cell_warnings(cell, Letters())
    assert "25 % of mine's reference answers" in line and "“umbrella”, 8" in line
    assert "raise eval.max_new_tokens to 8" in line
    assert budget.cell_warnings(cell.model_copy(update={"eval": cell.eval.model_copy(
        update={"max_new_tokens": 8})}), Letters()) == []


def test_an_embedded_tasks_possible_answers_are_checked_without_building_the_world():
    cell = CellConfig(eval={"tasks": ["world_textvqa", "world_caption"], "max_new_tokens": 3},
                      data={"world": {"n_words": len(vocab.WORDS)}})
    (line,) = budget.cell_warnings(cell, Letters())       # the caption task has a budget of its own
    long_words = [w for w in vocab.WORDS if len(w) > 3]
    assert f"{100 * len(long_words) / len(vocab.WORDS):.0f} % of world_textvqa's possible answers" in line


@pytest.mark.slow
def test_the_dry_run_warns_with_the_zoo_llms_own_tokenizer(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("name: g\nbase:\n  llm: {name: \"zoo:lm-xs\"}\n"
                    "  eval: {tasks: [world_vqa], max_new_tokens: 1}\n")    # "top left": 2 tokens
    out = subprocess.run([sys.executable, "-m", "ablate.cli", "run", str(grid), "--dry-run", "--home",
                          str(tmp_path / "home")], capture_output=True, text=True, check=True).stdout
    assert "warning: eval.max_new_tokens = 1:" in out and "world_vqa's possible answers" in out
    assert "need more tokens of zoo:lm-xs" in out
