"""Per evaluation task: the share of unknown tokens in its prompts and answers, and the share of empty predictions."""
import json
import logging

import pytest
from colour_world import ColourGenerator, nearest_colour
from wordlevel import word_tokenizer

from ablate.config.schema import EvalConfig, WorldConfig
from ablate.data.vocabulary import WARN_SHARE
from ablate.evaluation.runner import empty_share
from ablate.evaluation.vocabulary import task_unk_metrics

PROMPT_WORDS = "is the image red Answer question using a single word or phrase . no".split()


@pytest.fixture(scope="module")
def yes_no_task(world_dir, tmp_path_factory):
    """12 questions "is the image red", answered "yes" (red images: 2) or "no" (10)."""
    rows = []
    for p in sorted((world_dir / "images").glob("test_*.png")):
        red = p.stem.split("_")[1] == "red"
        rows.append({"id": p.stem, "image": str(p), "question": "is the image red",
                     "answers": ["yes" if red else "no"]})
    path = tmp_path_factory.mktemp("yesno") / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"name": "yes_no", "path": str(path)}


def test_a_task_whose_answers_the_tokenizer_lacks_is_measured_and_warned(world_dir, yes_no_task, caplog):
    cfg = EvalConfig(tasks=["world_vqa", "yes_no"], custom_tasks=[yes_no_task])
    tok = word_tokenizer([*PROMPT_WORDS, "the", "colour"])
    with caplog.at_level(logging.WARNING, logger="ablate.data.vocabulary"):
        metrics = task_unk_metrics(cfg, world_dir, tok)
    # a question: "is the image red" (4) + "Answer the question using a single word or phrase ." (10) + answer (1)
    assert metrics["eval/yes_no/unk_share"] == pytest.approx(2 / (12 * 15))
    # world_vqa: "the colour is" + one colour answer (only "red" known): the other 10 answers are unknown
    assert metrics["eval/world_vqa/unk_share"] == pytest.approx(10 / (12 * 4))
    lines = [r.getMessage() for r in caplog.records]
    assert 2 / (12 * 15) < WARN_SHARE   # 1.1 %: below the threshold, not warned
    assert len(lines) == 1 and lines[0].startswith("evaluation task world_vqa: 20.8% of the tokens are unknown")
    assert "e.g. 'green'" in lines[0] or "e.g. 'blue'" in lines[0]


def test_yes_answers_above_the_threshold_are_warned_naming_the_word(world_dir, yes_no_task, caplog):
    cfg = EvalConfig(tasks=["yes_no"], custom_tasks=[{**yes_no_task, "prompt": "{question}"}])
    with caplog.at_level(logging.WARNING, logger="ablate.data.vocabulary"):
        metrics = task_unk_metrics(cfg, world_dir, word_tokenizer(PROMPT_WORDS))
    assert metrics == {"eval/yes_no/unk_share": pytest.approx(2 / (12 * 5))}
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("evaluation task yes_no: 3.3% of the tokens are unknown") and "e.g. 'yes'" in line


def test_the_world_tokenizer_knows_every_task_word_and_spells_outside_ones(tmp_path, yes_no_task, caplog):
    from ablate.world import build_world

    world = build_world(WorldConfig(seed=1, n_train=8, n_test=4, n_demo=4, n_text_docs=8, n_interleaved_docs=4,
                                    image_size=64), tmp_path)
    cfg = EvalConfig(tasks=["world_vqa", "world_textvqa", "world_caption", "yes_no"], custom_tasks=[yes_no_task])
    with caplog.at_level(logging.WARNING, logger="ablate.data.vocabulary"):
        metrics = task_unk_metrics(cfg, world, world.tokenizer())
    assert metrics == {f"eval/{t}/unk_share": 0.0 for t in cfg.tasks}
    assert not caplog.records


def test_empty_share_of_known_predictions():
    samples = [{"filtered_resps": ["red"]}, {"filtered_resps": [""]}, {"filtered_resps": ["  \n"]},
               {"resps": [["blue"]]}, {"filtered_resps": [[" "]]}]
    assert empty_share(samples) == pytest.approx(3 / 5)
    assert empty_share([]) != empty_share([])   # nan: nothing to count


class SilentOnDark(ColourGenerator):
    """Answers nothing for black images and only spaces for white ones: 4 of 12 predictions are empty."""

    def _answer(self, context) -> str:
        images = [s for s in context if not isinstance(s, str)]
        colour = nearest_colour(images[-1])
        return {"black": "", "white": "   \nwhite"}.get(colour, super()._answer(context))


def test_empty_predictions_are_logged_per_task(world_dir, tmp_path):
    pytest.importorskip("lmms_eval")
    from ablate.evaluation import evaluate

    cfg = EvalConfig(tasks=["world_vqa", "world_textvqa"], shots=[0, 2], bootstrap=20)
    result = evaluate(SilentOnDark(), cfg, world_dir, tmp_path)
    for task in ("world_vqa", "world_textvqa"):
        for k in (0, 2):
            assert result.metrics[f"empty/{task}/{k}shot"] == pytest.approx(4 / 12)
            assert result.metrics[f"score/{task}/{k}shot"] == pytest.approx(8 / 12)
