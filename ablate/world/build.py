"""Build the embedded world once per settings hash, and read it back (`World`).

Layout under `cache_root/world-<hash>/` (see docs/architecture.md, "World"; docs/data.md):
`images/<id>.png`, `caption.jsonl`, `pretrain.jsonl` (the zoo encoders' own captioned images, with the words
drawn in each), `interleaved.jsonl`, `text.jsonl`, `text_heldout.jsonl`,
`questions/<task>_<split>.jsonl`, `tokenizer/`, plus two sidecars: `scenes.jsonl` (the spec of every drawn
image, to check answers against) and `world.json` (settings and counts; written last).

Everything is drawn from numpy generators seeded by `(seed, stream, index)`, so the same settings give the
same bytes, and one image does not depend on how many others there are. The world is written to a temporary
folder and renamed into place, so a crash never leaves a half-built world behind.

Image paths inside the .jsonl files are relative to the file's own folder (`images/train-00000.png` in
`caption.jsonl`, `../images/test-00000.png` in `questions/vqa_test.jsonl`), so a world, or a whole workspace,
can be copied or moved; `World` resolves them against where the world is now. (Worlds written with absolute
paths by older versions read as before.)
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ablate.config.schema import WorldConfig
from ablate.world import documents, questions
from ablate.world.captions import alt_text, rich_caption
from ablate.world.facts import scene_facts
from ablate.world.identity import GENERATOR_VERSION, world_hash
from ablate.world.render import save_images
from ablate.world.scene import Scene, sample_scene
from ablate.world.tokenizer import build_tokenizer, load_tokenizer
from ablate.world.vocab import (
    COLOURS,
    NUMBER_WORDS,
    ORDINALS,
    PLURALS,
    POSITIONS,
    SHAPES,
    SIZES,
    WORDS,
)

log = logging.getLogger(__name__)

SPLITS = {"train": 1, "test": 2, "demo": 3, "pretrain": 4}
STREAM_SCENE, STREAM_TEXT, STREAM_INTERLEAVED, STREAM_CORPUS, STREAM_HELDOUT, STREAM_QUESTIONS = 10, 11, 12, 13, 14, 15


def _rng(cfg: WorldConfig, *stream: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, *stream])


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")


def _read_jsonl(path: Path) -> Iterator[dict]:
    with path.open() as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


IMAGE_KEYS = ("image", "images")  # the row fields that hold image paths (a path, or a list of paths)


def _resolve(row: dict, folder: str) -> dict:
    """`row` with its image paths made absolute against `folder` (absolute paths are kept as they are)."""
    for key in IMAGE_KEYS:
        value = row.get(key)
        if isinstance(value, str):
            row[key] = os.path.normpath(os.path.join(folder, value))
        elif isinstance(value, list):
            row[key] = [os.path.normpath(os.path.join(folder, v)) for v in value]
    return row


def _read_resolved(path: Path) -> Iterator[dict]:
    """The rows of a world file, image paths resolved against the file's folder."""
    folder = str(path.parent.absolute())
    return (_resolve(row, folder) for row in _read_jsonl(path))


@dataclass(frozen=True)
class World:
    """A built world on disk. Paths in its files are relative to each file's folder; every reader here returns
    them absolute, pointing into `root` wherever the world now is."""

    root: Path
    config: WorldConfig

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    def file(self, name: str) -> Path:
        """One of `caption`, `pretrain`, `interleaved`, `text`, `text_heldout`, `scenes` (the .jsonl files)."""
        return self.root / f"{name}.jsonl"

    def read(self, name: str) -> list[dict]:
        return list(_read_resolved(self.file(name)))

    def questions_file(self, task: str, split: str) -> Path:
        if task not in questions.TASKS or split not in questions.SPLITS:
            raise ValueError(f"no question set {task!r}/{split!r}: tasks {questions.TASKS}, splits {questions.SPLITS}")
        return self.root / "questions" / f"{task}_{split}.jsonl"

    def questions(self, task: str, split: str = "test") -> list[dict]:
        return list(_read_resolved(self.questions_file(task, split)))

    def scenes(self) -> dict[str, Scene]:
        """Image path -> the scene drawn in it (train, test and demo images)."""
        return {r["image"]: Scene.from_dict(r["scene"]) for r in _read_resolved(self.file("scenes"))}

    def tokenizer(self):
        return load_tokenizer(self.root / "tokenizer")

    def corpus(self) -> Iterator[str]:
        """Every training text (alt-text, rich captions, interleaved text without image markers, text-only
        corpus), for language-model pretraining. Held-out text and question sets are left out."""
        for row in _read_jsonl(self.file("caption")):
            yield row["alt"]
            yield row["rich"]
        for row in _read_jsonl(self.file("interleaved")):
            yield re.sub(r"\s+", " ", row["text"].replace(documents.IMAGE, " ")).strip()
        for row in _read_jsonl(self.file("text")):
            yield row["text"]


def build_world(cfg: WorldConfig, cache_root: Path) -> World:
    """The world for `cfg`, built under `cache_root/world-<hash>/` unless it is there already."""
    cache_root = Path(cache_root).resolve()
    root = cache_root / f"world-{world_hash(cfg)}"
    if (root / "world.json").exists():
        return World(root, cfg)
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = cache_root / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    try:
        _write_world(cfg, tmp)
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / "world.json").exists():
                raise
            log.info("world %s was built by another process meanwhile; using it", root.name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("built world %s in %.1f s", root, time.perf_counter() - start)
    return World(root, cfg)


def _scenes(cfg: WorldConfig, split: str, n: int) -> list[Scene]:
    code = SPLITS[split]
    return [sample_scene(_rng(cfg, STREAM_SCENE, code, i), cfg.image_size, cfg.words_per_image, cfg.n_words)
            for i in range(n)]


def _imaginary(rng: np.random.Generator, cfg: WorldConfig) -> list[Scene]:
    k = 1 if rng.random() < 0.6 else int(rng.integers(2, 4))
    return [sample_scene(rng, cfg.image_size, cfg.words_per_image, cfg.n_words) for _ in range(k)]


def _write_world(cfg: WorldConfig, tmp: Path) -> None:
    (tmp / "images").mkdir(parents=True)
    (tmp / "questions").mkdir()
    counts = {"train": cfg.n_train, "test": cfg.n_test, "demo": cfg.n_demo, "pretrain": cfg.n_pretrain}
    scenes: dict[str, list[Scene]] = {}
    paths: dict[str, list[str]] = {}
    sidecar = []
    drawings = []
    for split, n in counts.items():
        scenes[split] = _scenes(cfg, split, n)
        paths[split] = []
        for i, scene in enumerate(scenes[split]):
            name = f"{split}-{i:05d}.png"
            drawings.append((scene, tmp / "images" / name))
            paths[split].append(f"images/{name}")   # relative to the world's folder
            sidecar.append({"image": paths[split][-1], "split": split, "scene": scene.to_dict()})
    save_images(drawings)
    _write_jsonl(tmp / "scenes.jsonl", sidecar)

    captions = [_caption_row(_rng(cfg, STREAM_TEXT, i), scene, path)
                for i, (scene, path) in enumerate(zip(scenes["train"], paths["train"]))]
    _write_jsonl(tmp / "caption.jsonl", captions)
    pretrain = [_caption_row(_rng(cfg, STREAM_TEXT, SPLITS["pretrain"], i), scene, path)
                for i, (scene, path) in enumerate(zip(scenes["pretrain"], paths["pretrain"]))]
    _write_jsonl(tmp / "pretrain.jsonl", pretrain)

    interleaved = []
    for d in range(cfg.n_interleaved_docs):
        rng = _rng(cfg, STREAM_INTERLEAVED, d)
        k = min(cfg.n_train, int(rng.integers(2, 5)))
        picked = [int(i) for i in rng.choice(cfg.n_train, size=k, replace=False)]
        text = documents.interleaved_doc(rng, [scenes["train"][i] for i in picked])
        interleaved.append({"images": [paths["train"][i] for i in picked], "text": text})
    _write_jsonl(tmp / "interleaved.jsonl", interleaved)

    corpus = [{"text": documents.text_doc(r, _imaginary(r, cfg))}
              for r in (_rng(cfg, STREAM_CORPUS, d) for d in range(cfg.n_text_docs))]
    heldout = [{"text": documents.text_doc(r, _imaginary(r, cfg))}
               for r in (_rng(cfg, STREAM_HELDOUT, d) for d in range(max(8, cfg.n_text_docs // 10)))]
    _write_jsonl(tmp / "text.jsonl", corpus)
    _write_jsonl(tmp / "text_heldout.jsonl", heldout)

    qsets = _question_sets(cfg, scenes, {s: [f"../{p}" for p in ps] for s, ps in paths.items()})
    for (task, split), rows in qsets.items():   # questions/ files: paths relative to questions/
        _write_jsonl(tmp / "questions" / f"{task}_{split}.jsonl", rows)

    texts = [r["alt"] for r in captions] + [r["rich"] for r in captions]
    texts += [r["text"] for r in interleaved + corpus + heldout]
    texts += [" ".join([r["question"], r["prompt"], *r["answers"]]) for rows in qsets.values() for r in rows]
    texts += [" ".join([*SHAPES, *PLURALS.values(), *COLOURS, *SIZES, *POSITIONS, *WORDS, *ORDINALS,
                        *map(str, NUMBER_WORDS), *NUMBER_WORDS.values()])]
    build_tokenizer(texts).save_pretrained(str(tmp / "tokenizer"))

    manifest = {"hash": world_hash(cfg), "version": GENERATOR_VERSION, "config": cfg.model_dump(mode="json"),
                "counts": {**counts, "interleaved": len(interleaved), "text": len(corpus), "text_heldout": len(heldout),
                           **{f"{t}_{s}": len(r) for (t, s), r in qsets.items()}}}
    (tmp / "world.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _caption_row(rng: np.random.Generator, scene: Scene, path: str) -> dict:
    facts = scene_facts(scene)
    return {"image": path, "alt": alt_text(rng, facts), "rich": rich_caption(rng, facts),
            "words": [w.text for w in scene.words], "word_sizes": [w.size for w in scene.words]}


def _question_sets(cfg: WorldConfig, scenes: dict, paths: dict) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for split in questions.SPLITS:
        code = SPLITS[split]
        vqa, textvqa, caption = [], [], []
        for i, (scene, path) in enumerate(zip(scenes[split], paths[split])):
            rng, facts = _rng(cfg, STREAM_QUESTIONS, code, i), scene_facts(scene)
            vqa.append(questions.vqa_record(rng, f"vqa-{split}-{i:05d}", path, facts, i))
            textvqa.append(questions.textvqa_record(f"textvqa-{split}-{i:05d}", path, scene))
            caption.append(questions.caption_record(rng, f"caption-{split}-{i:05d}", path, facts))
        out[("vqa", split)], out[("textvqa", split)], out[("caption", split)] = vqa, textvqa, caption
    return out
