"""Building, caching and determinism of the world."""
import json
from pathlib import Path

import pytest

from ablate.config.schema import WorldConfig
from ablate.world import build, build_world, world_hash
from ablate.world.questions import SPLITS, TASKS

TINY = {"n_train": 24, "n_test": 16, "n_demo": 8, "n_text_docs": 16, "n_interleaved_docs": 8}  # as in conftest

CONTRACT_FILES = {"caption.jsonl", "pretrain.jsonl", "interleaved.jsonl", "text.jsonl", "text_heldout.jsonl", "images",
                  "questions", "tokenizer", "scenes.jsonl", "world.json"}


def _files(root: Path) -> dict[str, bytes]:
    """Every file's bytes, with the world's own root path written as ROOT so two roots compare equal."""
    return {str(p.relative_to(root)): p.read_bytes().replace(str(root).encode(), b"ROOT")
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_matches_the_contract(tiny_world, tiny_cfg):
    root = tiny_world.root
    assert root.name == f"world-{world_hash(tiny_cfg)}"
    assert {p.name for p in root.iterdir()} == CONTRACT_FILES
    assert {p.name for p in (root / "questions").iterdir()} == {f"{t}_{s}.jsonl" for t in TASKS for s in SPLITS}
    assert len(list((root / "images").glob("*.png"))) == TINY["n_train"] + TINY["n_test"] + TINY["n_demo"]
    assert len(tiny_world.read("caption")) == TINY["n_train"]
    assert len(tiny_world.read("interleaved")) == TINY["n_interleaved_docs"]
    assert len(tiny_world.read("text")) == TINY["n_text_docs"]
    assert len(tiny_world.read("text_heldout")) == 8
    from PIL import Image
    with Image.open(tiny_world.read("caption")[0]["image"]) as im:
        assert im.size == (tiny_cfg.image_size, tiny_cfg.image_size) and im.mode == "RGB"


def test_same_seed_same_bytes_other_seed_other_images(tmp_path, tiny_world, tiny_cfg):
    again = build_world(tiny_cfg, tmp_path / "a")
    assert again.root != tiny_world.root
    assert _files(again.root) == _files(tiny_world.root)
    other = build_world(tiny_cfg.model_copy(update={"seed": 4}), tmp_path / "b")
    a, b = _files(tiny_world.root), _files(other.root)
    assert a["images/train-00000.png"] != b["images/train-00000.png"]
    assert a["caption.jsonl"] != b["caption.jsonl"]


def test_cache_is_reused_and_rebuilt_when_settings_change(tmp_path, monkeypatch):
    cfg = WorldConfig(**TINY)
    first = build_world(cfg, tmp_path)

    def fail(*a, **k):
        raise AssertionError("rebuilt a cached world")

    monkeypatch.setattr(build, "_write_world", fail)
    assert build_world(cfg, tmp_path).root == first.root  # reused: nothing written
    monkeypatch.undo()
    changed = build_world(cfg.model_copy(update={"image_size": 64}), tmp_path)
    assert changed.root != first.root
    assert json.loads((changed.root / "world.json").read_text())["config"]["image_size"] == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.root.name, changed.root.name])


def test_a_crash_leaves_no_half_built_world(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(build, "build_tokenizer", boom)  # fails after every image was written
    with pytest.raises(RuntimeError, match="disk full"):
        build_world(WorldConfig(**TINY), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_one_image_does_not_depend_on_how_many_others(tmp_path, tiny_world, tiny_cfg):
    bigger = build_world(tiny_cfg.model_copy(update={"n_train": TINY["n_train"] + 5}), tmp_path)
    a = (tiny_world.root / "images" / "test-00003.png").read_bytes()
    assert (bigger.root / "images" / "test-00003.png").read_bytes() == a


def test_pretrain_split_is_its_own_images_with_the_words_drawn(tmp_path):
    world = build_world(WorldConfig(**{**TINY, "n_pretrain": 12}), tmp_path)
    rows, scenes = world.read("pretrain"), world.scenes()
    assert len(rows) == 12
    train_images = {r["image"] for r in world.read("caption")}
    assert not train_images & {r["image"] for r in rows}
    for row in rows:
        drawn = scenes[row["image"]].words
        assert row["words"] == [w.text for w in drawn] and row["word_sizes"] == [w.size for w in drawn]
        assert f"the word is {row['words'][0]}" in row["rich"]


def test_a_smaller_vocabulary_draws_only_its_words_and_is_another_world(tmp_path):
    from ablate.world import vocab

    small = build_world(WorldConfig(**{**TINY, "n_words": 3}), tmp_path)
    drawn = {w.text for scene in small.scenes().values() for w in scene.words}
    assert drawn <= set(vocab.words(3)) and len(drawn) == 3
    assert vocab.words(48) == vocab.WORDS and sorted(vocab.SUBSET_ORDER) == sorted(vocab.WORDS)
    assert world_hash(WorldConfig(**TINY)) != small.root.name.removeprefix("world-")


def test_images_drawn_in_several_processes_are_the_same_files(tmp_path):
    import numpy as np

    from ablate.world.render import save_images
    from ablate.world.scene import sample_scene

    scenes = [sample_scene(np.random.default_rng(i), 48, 1, 12) for i in range(400)]
    for name, processes in (("one", 1), ("two", 2)):
        (tmp_path / name).mkdir()
        save_images([(s, tmp_path / name / f"{i}.png") for i, s in enumerate(scenes)], processes=processes)
    assert [(tmp_path / "one" / f"{i}.png").read_bytes() for i in range(400)] == \
        [(tmp_path / "two" / f"{i}.png").read_bytes() for i in range(400)]
