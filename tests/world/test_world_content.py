"""What the world says is what it drew: questions, captions, documents against the scene specs and pixels."""
import re
from collections import Counter

import numpy as np
from PIL import Image

from ablate.world import vocab
from ablate.world.facts import VQA_TYPES, scene_facts
from ablate.world.legibility import legible_fraction


def test_drawn_pixels_match_the_scene_spec(tiny_world):
    for path, scene in tiny_world.scenes().items():
        pixels = np.asarray(Image.open(path))
        for s in scene.shapes:
            x0, y0, x1, y1 = s.box
            centre = pixels[(y0 + y1) // 2, (x0 + x1) // 2]
            assert tuple(centre) == vocab.COLOURS[s.colour], (path, s)
        for w in scene.words:  # dark ink inside each word's box, nowhere a shape is
            x0, y0, x1, y1 = w.box
            assert pixels[y0:y1, x0:x1].min() < 60


def test_vqa_answers_agree_with_the_scene(tiny_world):
    scenes = tiny_world.scenes()
    for split in ("test", "demo"):
        rows = tiny_world.questions("vqa", split)
        assert {r["type"] for r in rows} <= set(VQA_TYPES)
        for r in rows:
            scene = scenes[r["image"]]
            assert r["image"].split("/")[-1].startswith(split)
            assert set(r) == {"id", "image", "question", "prompt", "answers", "type"}
            if r["prompt"] == "the number of shapes is":
                assert r["answers"][0] == str(len(scene.shapes))
            elif r["type"] == "count":
                plural = r["prompt"].split()[-2]
                shape = next(k for k, v in vocab.PLURALS.items() if v == plural)
                assert r["answers"][0] == str(sum(s.shape == shape for s in scene.shapes))
            elif r["type"] == "colour":
                shape = r["prompt"].split()[-2]
                (only,) = [s for s in scene.shapes if s.shape == shape]  # unambiguous: exactly one
                assert r["answers"] == [only.colour]
            elif r["type"] == "position":
                (only,) = [s for s in scene.shapes if s.shape == r["prompt"].split()[1]]
                assert r["answers"] == [only.position]
            elif r["type"] == "shape":
                (only,) = [s for s in scene.shapes if s.colour == r["prompt"].split()[1]]
                assert r["answers"] == [only.shape]


def test_vqa_types_are_balanced_and_count_has_number_words(tiny_world):
    rows = tiny_world.questions("vqa", "test")
    counts = Counter(r["type"] for r in rows)
    assert max(counts.values()) - min(counts.values()) <= 3
    assert all(r["answers"][1] in vocab.NUMBER_WORDS.values() for r in rows if r["type"] == "count")


def test_textvqa_reads_the_word_drawn(tiny_world):
    scenes = tiny_world.scenes()
    rows = tiny_world.questions("textvqa", "test")
    for r in rows:
        word = scenes[r["image"]].words[0]
        assert r["answers"] == [word.text] and r["type"] == f"text-{word.size}"
        assert r["prompt"] == "the word is" and r["question"] == "What word is written in the image?"
    assert {r["type"] for r in rows} == {"text-small", "text-large"}


def test_small_words_are_legible_at_160px_and_not_at_96px():
    side = 192
    small = round(side * vocab.WORD_SIZE_FRACTION["small"])
    large = round(side * vocab.WORD_SIZE_FRACTION["large"])
    assert legible_fraction(small, 192, side) == 1.0
    assert legible_fraction(small, 160, side) == 1.0
    assert legible_fraction(small, 96, side) == 0.0
    assert legible_fraction(small, 64, side) == 0.0
    assert legible_fraction(large, 96, side) == 1.0
    assert legible_fraction(large, 64, side) == 1.0


def test_rich_captions_hold_every_fact_and_alt_text_is_terse(tiny_world):
    scenes = tiny_world.scenes()
    rows = tiny_world.read("caption")
    for r in rows:
        sentences = set(r["rich"].rstrip(".").split(". "))
        assert sentences == {f.sentence for f in scene_facts(scenes[r["image"]])}
        assert r["alt"] in vocab.VAGUE_PHRASES or r["alt"].count(". ") <= 1
    assert any(r["alt"] in vocab.VAGUE_PHRASES for r in rows)
    for r in tiny_world.questions("caption", "test"):
        want = {f.sentence for f in scene_facts(scenes[r["image"]])}
        assert all(set(ref.rstrip(".").split(". ")) == want for ref in r["answers"]) and r["prompt"] == ""


def test_splits_use_disjoint_images(tiny_world):
    train = {r["image"] for r in tiny_world.read("caption")}
    test = {r["image"] for r in tiny_world.questions("vqa", "test")}
    demo = {r["image"] for r in tiny_world.questions("vqa", "demo")}
    assert train and test and demo and not (train & test) and not (train & demo) and not (test & demo)
    inter = {p for r in tiny_world.read("interleaved") for p in r["images"]}
    assert inter <= train


def test_interleaved_documents_are_true_and_in_order(tiny_world):
    scenes = tiny_world.scenes()
    ordinal = {o: i for i, o in enumerate(vocab.ORDINALS)}
    for doc in tiny_world.read("interleaved"):
        assert 2 <= len(doc["images"]) <= 4
        assert doc["text"].count("<image>") == len(doc["images"])
        chunks = doc["text"].split("<image>")[1:]
        for path, chunk in zip(doc["images"], chunks):  # facts after each marker are about that image
            facts = {f.sentence for f in scene_facts(scenes[path])}
            said = [s.strip() for s in chunk.split(".") if s.strip() and "picture" not in s]
            assert said and set(said) <= facts
        for a, how, b in re.findall(r"the (\w+) picture has (more|fewer|as many) shapes (?:than|as) the (\w+)",
                                    doc["text"]):
            na, nb = (len(scenes[doc["images"][ordinal[o]]].shapes) for o in (a, b))
            assert {"more": na > nb, "fewer": na < nb, "as many": na == nb}[how]


def test_text_corpus_and_heldout_are_different_documents(tiny_world):
    corpus = {r["text"] for r in tiny_world.read("text")}
    heldout = {r["text"] for r in tiny_world.read("text_heldout")}
    assert not corpus & heldout
    assert any("question:" in t for t in corpus) or any("picture:" in t for t in corpus)
    texts = list(tiny_world.corpus())
    assert len(texts) == 2 * 24 + 8 + 16 and not any("<image>" in t for t in texts)
    assert not heldout & set(texts)


def test_several_words_per_image_are_named_top_to_bottom(tmp_path):
    from ablate.config.schema import WorldConfig
    from ablate.world import build_world

    world = build_world(WorldConfig(n_train=8, n_test=4, n_demo=4, n_text_docs=8, n_interleaved_docs=4,
                                    words_per_image=2), tmp_path)
    scenes = world.scenes()
    for r in world.questions("textvqa", "test"):
        words = scenes[r["image"]].words
        assert len(words) == 2 and words[0].box[1] <= words[1].box[1]
        assert r["prompt"] == "the first word is" and r["answers"] == [words[0].text]
    for r in world.read("caption"):
        words = scenes[r["image"]].words
        assert f"the second word is {words[1].text}" in r["rich"]
