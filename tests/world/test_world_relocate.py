"""A world (or the workspace holding it) can be moved or copied: its files hold no absolute paths."""
import json
import shutil
from pathlib import Path

from PIL import Image

from ablate.config.schema import WorldConfig
from ablate.evaluation.taskfns import TaskFns, load_records
from ablate.evaluation.tasks import embedded_spec
from ablate.world import build, build_world, world_hash
from ablate.world.questions import SPLITS, TASKS

SMALL = {"n_train": 8, "n_test": 4, "n_demo": 4, "n_text_docs": 8, "n_interleaved_docs": 4, "n_pretrain": 4}


def _image_paths(world) -> list[str]:
    rows = world.read("caption") + world.read("pretrain") + world.read("scenes")
    paths = [r["image"] for r in rows] + [p for r in world.read("interleaved") for p in r["images"]]
    return paths + [r["image"] for t in TASKS for s in SPLITS for r in world.questions(t, s)]


def test_a_moved_world_reads_from_where_it_is_now(tmp_path, monkeypatch):
    cfg = WorldConfig(seed=5, **SMALL)
    world = build_world(cfg, tmp_path / "a" / "cache")
    before = {name: world.read(name) for name in ("caption", "interleaved", "scenes")}
    files = {p: p.read_text() for p in world.root.rglob("*.jsonl")}
    assert not any(str(tmp_path) in text for text in files.values())   # nothing absolute is written

    shutil.move(tmp_path / "a", tmp_path / "b")                            # the whole workspace moves

    def no_rebuild(*a, **k):
        raise AssertionError("the moved world was built again")

    monkeypatch.setattr(build, "_write_world", no_rebuild)
    moved = build_world(cfg, tmp_path / "b" / "cache")
    assert moved.root == tmp_path / "b" / "cache" / f"world-{world_hash(cfg)}"   # same hash, so same cell ids
    assert json.loads((moved.root / "world.json").read_text())["hash"] == world_hash(cfg)
    paths = _image_paths(moved)
    assert paths and all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
    assert all(Path(p).is_relative_to(moved.root / "images") for p in paths)
    with Image.open(moved.read("caption")[0]["image"]) as im:
        assert im.size == (cfg.image_size, cfg.image_size)
    # the same rows as before the move, with the new root in the paths
    old, new = str(world.root), str(moved.root)
    for name, rows in before.items():
        assert json.dumps(moved.read(name)) == json.dumps(rows).replace(old, new)
    scenes = moved.scenes()
    assert all(r["image"] in scenes for r in moved.read("caption"))


def test_question_files_resolve_for_the_evaluator(tmp_path):
    """lmms-eval tasks read question files directly: their relative paths resolve against the file's folder."""
    from ablate.config.schema import EvalConfig

    cfg = WorldConfig(seed=5, **SMALL)
    world = build_world(cfg, tmp_path / "cache")
    spec = embedded_spec("world_vqa", 1, EvalConfig(), world)
    fns = TaskFns(spec)
    for file in (spec.data_file, spec.demo_file):
        rows = load_records(file)
        assert rows and all(not Path(r["image"]).is_absolute() for r in rows)
        assert all(Path(fns.image_path(r["image"])).is_file() for r in rows)
    assert fns.image_path(load_records(spec.data_file)[0]["image"]) == world.questions("vqa", "test")[0]["image"]
