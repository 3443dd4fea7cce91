"""Interleaved k-shot contexts: k demonstration images in order, then the query; never the query's image."""
import json

import pytest
from colour_world import nearest_colour

from ablate.data.vqa import most_common as majority_answer  # the answer a demonstration shows
from ablate.evaluation.fewshot import DemoPool
from ablate.evaluation.spec import TaskSpec
from ablate.evaluation.taskfns import TaskFns, load_records


def _fns(world_dir, shots, seed=0, demo=True, task="vqa"):
    q = world_dir / "questions"
    return TaskFns(TaskSpec(
        name=f"t_{shots}", base="t", data_file=str(q / f"{task}_test.jsonl"), shots=shots,
        demo_file=str(q / f"{task}_demo.jsonl") if demo else None, seed=seed, prompt="{prompt}",
    ))


def test_k_shot_context_holds_k_demos_in_order_then_the_query(world_dir):
    fns = _fns(world_dir, 3)
    doc = load_records(fns.spec.data_file)[0]
    demos = fns.demos(doc)
    images = fns.doc_to_visual(doc)
    text = fns.doc_to_text(doc)
    assert len(demos) == 3 and len(images) == 4
    assert text.count("<image>") == 4
    pieces = text.split("<image>")[1:]
    for demo, image, piece in zip(demos, images, pieces):
        assert piece == f"the colour is {demo['answers'][0]}\n"
        assert nearest_colour(image) == demo["answers"][0]  # each image sits right before its own answer
    assert pieces[-1] == "the colour is"
    assert nearest_colour(images[-1]) == doc["answers"][0]
    assert all(d["image"] != doc["image"] for d in demos)


def test_zero_shot_is_the_query_alone(world_dir):
    fns = _fns(world_dir, 0)
    doc = load_records(fns.spec.data_file)[0]
    assert fns.doc_to_text(doc) == "<image>the colour is" and len(fns.doc_to_visual(doc)) == 1


def test_demos_never_show_the_query_image_even_from_the_test_split(world_dir):
    # No demo split: the pool is the test file itself, so the query's own record is in the pool.
    fns = _fns(world_dir, 5, demo=False)
    records = load_records(fns.spec.data_file)
    for doc in records:
        demos = fns.demos(doc)
        assert len(demos) == 5 and len({d["id"] for d in demos}) == 5
        assert doc["image"] not in {d["image"] for d in demos}


def test_demos_are_fixed_by_seed_and_query_not_by_instance(world_dir):
    docs = load_records(_fns(world_dir, 2).spec.data_file)
    first = [[d["id"] for d in _fns(world_dir, 2).demos(doc)] for doc in docs]
    again = [[d["id"] for d in _fns(world_dir, 2).demos(doc)] for doc in docs]
    other_seed = [[d["id"] for d in _fns(world_dir, 2, seed=7).demos(doc)] for doc in docs]
    assert first == again
    assert first != other_seed
    assert len({tuple(x) for x in first}) > 1  # queries get different demonstrations


def test_pool_too_small_says_so():
    pool = DemoPool([{"id": 1}, {"id": 2}], ["a", "b"])
    with pytest.raises(ValueError, match="1 records not showing the query's image, 2 needed"):
        pool.draw(2, seed=0, query_key="q", query_image="a")
    assert pool.draw(1, seed=0, query_key="q", query_image="a") == [1]


def test_majority_answer():
    assert majority_answer(["2", "3", "3", "2", "3"]) == "3"
    assert majority_answer(["red", "blue"]) == "red"


def test_answers_in_other_layouts(tmp_path, world_dir):
    image = next((world_dir / "images").glob("test_red_*.png"))
    rows = {"questions": [{"q": "colour?", "img": image.name, "ans": [{"answer": "red"}, {"answer": "red"}]}]}
    path = tmp_path / "qs.json"
    path.write_text(json.dumps(rows))
    fns = TaskFns(TaskSpec(name="x", base="x", data_file=str(path), image_column="img", question_column="q",
                           answers_column="ans", image_root=str(image.parent), id_column=None))
    doc = load_records(str(path))[0]
    assert fns.answers(doc) == ["red", "red"]
    assert fns.doc_to_text(doc) == "<image>colour?\nAnswer the question using a single word or phrase."
    assert nearest_colour(fns.doc_to_visual(doc)[0]) == "red"
    assert fns.process_results(doc, ["Red"]) == {"vqa": 1.0}
