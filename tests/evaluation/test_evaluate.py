"""`evaluate` end to end through lmms-eval's `simple_evaluate`, with the colour test double.

12 test questions per task (6 colours x 2 images), the double answers black images wrongly: the expected
scores are exact (10/12).
"""
import json

import pandas as pd
import pytest
from colour_world import ColourGenerator

pytest.importorskip("lmms_eval")

from ablate.config.schema import EvalConfig  # noqa: E402
from ablate.evaluation import evaluate  # noqa: E402


def _identity(image) -> bytes:
    return image.tobytes()


@pytest.fixture(scope="module")
def image_paths(world_dir):
    from PIL import Image

    return {Image.open(p).convert("RGB").tobytes(): p.name for p in (world_dir / "images").glob("*.png")}


@pytest.fixture(scope="module")
def custom_files(tmp_path_factory, world_dir):
    """A local VQA-format dataset in two layouts: jsonl with relative paths, parquet with image bytes."""
    root = tmp_path_factory.mktemp("custom")
    rows = []
    for p in sorted((world_dir / "images").glob("test_*.png")):
        colour = p.stem.split("_")[1]
        rows.append({"qid": p.stem, "img": f"images/{p.name}", "q": "Which colour?", "gold": colour,
                     "kind": "dark" if colour in ("black", "blue") else "light"})
    (root / "images").symlink_to(world_dir / "images")
    (root / "qs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    frame = pd.DataFrame({
        "img": [{"bytes": (world_dir / r["img"]).read_bytes(), "path": None} for r in rows],
        "q": [r["q"] for r in rows],
        "gold": [[r["gold"]] * 10 for r in rows],
    })
    frame.to_parquet(root / "qs.parquet")
    return root


@pytest.fixture(scope="module")
def run(world_dir, custom_files, tmp_path_factory):
    cfg = EvalConfig(
        tasks=["world_vqa", "world_textvqa", "world_caption", "my_json", "my_parquet"],
        shots=[0, 2],
        bootstrap=200,
        n_predictions=4,
        blind=False,   # the blind evaluations: test_a_model_reading_the_image_loses_it_blind
        custom_tasks=[
            {"name": "my_json", "path": str(custom_files / "qs.jsonl"), "image_column": "img",
             "question_column": "q", "answers_column": "gold", "id_column": "qid", "prompt": "Q: {q} A:",
             "type_column": "kind"},
            {"name": "my_parquet", "path": str(custom_files / "qs.parquet"), "image_column": "img",
             "question_column": "q", "answers_column": "gold"},
        ],
    )
    gen = ColourGenerator(wrong={"black"})
    result = evaluate(gen, cfg, world_dir, tmp_path_factory.mktemp("out"))
    return cfg, gen, result


def test_scores_are_exact_on_known_answers(run):
    _, _, result = run
    m = result.metrics
    for task in ("world_vqa", "world_textvqa", "my_json", "my_parquet"):
        for k in (0, 2):
            assert m[f"score/{task}/{k}shot"] == pytest.approx(10 / 12), task
            assert m[f"n/{task}/{k}shot"] == 12
            assert m[f"ci_low/{task}/{k}shot"] <= 10 / 12 <= m[f"ci_high/{task}/{k}shot"]
            assert m[f"ci_high/{task}/{k}shot"] - m[f"ci_low/{task}/{k}shot"] > 0.1
    assert m["score/world_vqa/0shot/colour-bright"] == 1.0  # yellow, white
    assert m["score/world_vqa/0shot/colour-plain"] == pytest.approx(6 / 8)  # red green blue (black wrong)
    assert m["n/world_textvqa/0shot/text-small"] == 6
    assert m["score/my_json/2shot/dark"] == 0.5 and m["score/my_json/2shot/light"] == 1.0  # black is wrong
    assert m["anls/world_textvqa/0shot"] == pytest.approx(10 / 12)
    assert m["score/world_caption/0shot"] > 0.5


def test_predictions_sample_for_the_log(run):
    _, _, result = run
    rows = [r for r in result.predictions if r["task"] == "world_vqa" and r["shots"] == 0]
    assert len(rows) == 4
    first = rows[0]
    assert set(first) >= {"image", "question", "prediction", "references", "correct", "type", "id"}
    assert first["image"].endswith("test_red_0.png") and first["prediction"] == "A red"
    assert first["references"] == ["red"] and first["correct"] == 1.0
    assert any(r["correct"] == 0.0 and r["prediction"] == "purple" for r in rows)
    json.dumps(result.predictions)  # loggable as a table


def test_few_shot_contexts_show_demo_images_before_the_query_never_the_query(run, image_paths):
    _, gen, _ = run
    shot2 = [c for c in gen.contexts if sum(not isinstance(s, str) for s in c) == 3]
    assert len(shot2) == 12 * 5  # 5 tasks, 12 questions each
    for context in shot2:
        names = [image_paths[_identity(s)] for s in context if not isinstance(s, str)]
        assert names[-1].startswith("test_")
        assert names[-1] not in names[:-1]
        assert isinstance(context[-1], str) and not isinstance(context[0], str)
    world = [c for c in shot2 if c[-1] == "the colour is"]
    assert len(world) == 12
    for context in world:
        names = [image_paths[_identity(s)] for s in context if not isinstance(s, str)]
        assert all(n.startswith("demo_") for n in names[:-1])
        demo_texts = [s for s in context[:-1] if isinstance(s, str)]
        demo_colours = [n.split("_")[1] for n in names[:-1]]
        assert demo_texts == [f"the colour is {c}\n" for c in demo_colours]


def test_same_demos_for_another_model(run, world_dir, image_paths, tmp_path):
    cfg, gen, _ = run
    other = ColourGenerator(wrong={"red", "blue"})
    cfg2 = EvalConfig(tasks=["world_vqa"], shots=[2], bootstrap=10, blind=False)
    result = evaluate(other, cfg2, world_dir, tmp_path)
    assert result.metrics["score/world_vqa/2shot"] == pytest.approx(8 / 12)

    def key(context):
        return tuple(s if isinstance(s, str) else image_paths[_identity(s)] for s in context)

    first = sorted(key(c) for c in gen.contexts if len(c) == 6 and c[-1] == "the colour is")
    assert first == sorted(key(c) for c in other.contexts)


def test_limit_and_generated_task_folder_and_caller_rng_untouched(world_dir, tmp_path):
    import random

    import numpy as np

    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    result = evaluate(ColourGenerator(), EvalConfig(tasks=["world_vqa"], shots=[4], limit=5, bootstrap=0),
                      world_dir, tmp_path)
    assert (random.random(), np.random.random()) == expected
    assert result.metrics["n/world_vqa/4shot"] == 5
    assert result.metrics["score/world_vqa/4shot"] == 1.0
    yaml = (tmp_path / "lmms_tasks" / "world_vqa_4shot" / "world_vqa_4shot.yaml").read_text()
    assert str((world_dir / "questions" / "vqa_test.jsonl").resolve()) in yaml
    assert '"shots": 4' in (tmp_path / "lmms_tasks" / "world_vqa_4shot" / "utils.py").read_text()


def test_a_model_reading_the_image_loses_it_blind(world_dir, tmp_path):
    """The colour double reads the image: with the images shuffled among the questions (each shows another
    question's image) it scores far lower, and the paired gap over the same questions is beyond the noise."""
    import numpy as np

    from ablate.report import stats as st

    cfg = EvalConfig(tasks=["world_vqa"], shots=[0], bootstrap=200)
    result = evaluate(ColourGenerator(wrong={"black"}), cfg, world_dir, tmp_path)
    m = result.metrics
    assert m["score/world_vqa/0shot"] == pytest.approx(10 / 12) and m["n/world_vqa_blind/0shot"] == 12
    assert m["score/world_vqa_blind/0shot"] < 0.5
    rows = pd.DataFrame(result.per_question)
    assert len(rows) == 24 and set(rows["task"]) == {"world_vqa", "world_vqa_blind"}
    seen, blind = (rows[rows["task"] == t].set_index("id")["correct"] for t in ("world_vqa", "world_vqa_blind"))
    gap = st.paired([(1.0, [seen.to_numpy(float)]), (-1.0, [blind.loc[seen.index].to_numpy(float)])])
    assert gap.mean == pytest.approx(m["score/world_vqa/0shot"] - m["score/world_vqa_blind/0shot"])
    assert gap.ci[0] > 0 and np.isclose(seen.mean(), 10 / 12)
