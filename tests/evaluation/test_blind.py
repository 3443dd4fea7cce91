"""A blind evaluation shows each question another question's image: a seeded derangement of the distinct images."""
import json

from ablate.config.schema import EvalConfig
from ablate.evaluation.spec import TaskSpec
from ablate.evaluation.taskfns import TaskFns
from ablate.evaluation.tasks import plan


def _file(tmp_path, n_images=6, per_image=2):
    rows = [{"id": f"q{i}-{j}", "image": f"img{i}.png", "question": f"q{j}?", "answers": ["a"]}
            for i in range(n_images) for j in range(per_image)]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def test_each_image_shows_another_every_image_once_and_its_questions_alike(tmp_path):
    path, rows = _file(tmp_path)
    fns = TaskFns(TaskSpec(name="t_blind", base="t_blind", data_file=str(path), blind_seed=0))
    shown = {r["id"]: fns.query_image(r) for r in rows}
    own = {r["id"]: r["image"] for r in rows}
    assert all(shown[q] != own[q] for q in shown)                                # never its own image
    assert sorted(set(shown.values())) == sorted(set(own.values()))              # every image shown, once each
    assert shown["q0-0"] == shown["q0-1"]                                        # an image's questions alike
    again = TaskFns(TaskSpec(name="t_blind", base="t_blind", data_file=str(path), blind_seed=0))
    assert {r["id"]: again.query_image(r) for r in rows} == shown                # seeded: the same every time
    plain = TaskFns(TaskSpec(name="t", base="t", data_file=str(path)))
    assert all(plain.query_image(r) == r["image"] for r in rows)


def test_a_custom_task_is_planned_blind_too_with_its_own_name(tmp_path):
    path, _ = _file(tmp_path)
    cfg = EvalConfig(tasks=["mine"], custom_tasks=[{"name": "mine", "path": str(path)}], shots=[0, 2])
    planned = {(t.base, t.shots): t for t in plan(cfg)}
    assert set(planned) == {("mine", 0), ("mine", 2), ("mine_blind", 0), ("mine_blind", 2)}
    blind = planned[("mine_blind", 2)].spec
    assert blind.name == "mine_blind_2shot" and blind.blind_seed == 0 and blind.data_file == str(path.resolve())
    assert planned[("mine", 2)].spec.blind_seed is None
    assert {t.base for t in plan(cfg.model_copy(update={"blind": False}))} == {"mine"}
