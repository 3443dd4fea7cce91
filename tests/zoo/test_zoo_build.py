"""The zoo trains tiny recipes in seconds, learns, caches by recipe hash, and loads through the normal specs."""
import json
import random

import pytest
import torch
from PIL import Image, ImageDraw

from ablate.config.schema import EncoderConfig, LLMConfig, WorldConfig
from ablate.models.encoders import build_encoder
from ablate.models.llm import build_llm, image_token_id
from ablate.world.tokenizer import build_tokenizer
from ablate.zoo import RECIPES, EncoderRecipe, LMRecipe, ZooData, ensure_built, zoo_status
from ablate.zoo import build as zoo_build

torch.set_num_threads(1)
COLOURS = {"red": (220, 30, 30), "green": (30, 160, 50), "blue": (30, 70, 220), "yellow": (235, 200, 0)}
PLACES = {"top left": (0, 0), "top right": (16, 0), "bottom left": (0, 16), "bottom right": (16, 16)}
TINY_ENC = dict(width=32, layers=2, heads=2, patch=8, resolution=32, steps=80, batch=32, lr=3e-3,
                embed_dim=32, text_width=32, text_layers=1, text_len=12, heldout=32, probe_train=96, warmup=0.1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    rng = random.Random(0)
    captions = []
    for i in range(160):
        colour, place = rng.choice(list(COLOURS)), rng.choice(list(PLACES))
        img = Image.new("RGB", (32, 32), (245, 245, 245))
        x, y = PLACES[place]
        ImageDraw.Draw(img).rectangle([x + 2, y + 2, x + 13, y + 13], fill=COLOURS[colour])
        path = root / f"{i}.png"
        img.save(path)
        captions.append({"image": str(path), "alt": f"a {colour} square",
                         "rich": f"the {colour} square is at the {place} ."})
    texts = [c["rich"] for c in captions] + [c["alt"] for c in captions]
    return ZooData(captions=captions, texts=lambda: texts, tokenizer=build_tokenizer(texts),
                   heldout_texts=lambda: texts[:40], identity="test-pairs")


@pytest.mark.parametrize("objective", ["clip", "siglip", "aim"])
def test_encoder_objectives_learn(tmp_path, data, objective):
    recipe = EncoderRecipe(objective, **{**TINY_ENC, "batch": 16} if objective == "aim" else TINY_ENC)
    folder = ensure_built(f"{objective}-s", tmp_path, recipe=recipe, data=data, log_fn=lambda *_: None)
    metrics = json.loads((folder / "zoo.json").read_text())["metrics"]
    assert metrics["loss_last"] < 0.8 * metrics["loss_first"]
    if objective != "aim":
        # 16 caption kinds among 32 held-out pairs: chance is about 1/16
        assert metrics["zero_shot_i2t_top1"] > 2 * metrics["chance"]
        assert (folder / "text_tower" / "projections.pt").is_file()
    enc = build_encoder(EncoderConfig(name=f"hf:{folder}", resolution=32), tmp_path)
    assert enc(enc.preprocess([Image.open(data.captions[0]["image"])])).shape == (1, 16, 32)


def test_cache_hit_and_rebuild_on_recipe_change(tmp_path, data, monkeypatch):
    recipe = EncoderRecipe("random", **{**TINY_ENC, "steps": 0})
    first = ensure_built("random-s", tmp_path, recipe=recipe, data=data)
    assert first.name.startswith("random-s-") and first.parent == tmp_path / "zoo"
    metrics = json.loads((first / "zoo.json").read_text())["metrics"]
    assert 0 <= metrics["probe_i2t_top1"] <= 1 and "zero_shot_i2t_top1" not in metrics

    def boom(*args, **kwargs):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr("ablate.zoo.vision.train_encoder", boom)
    assert ensure_built("zoo:random-s", tmp_path, recipe=recipe, data=data) == first     # cache hit
    with pytest.raises(AssertionError, match="rebuilt"):
        ensure_built("random-s", tmp_path, recipe=EncoderRecipe("random", **{**TINY_ENC, "width": 48}), data=data)
    assert not [p for p in (tmp_path / "zoo").iterdir() if p.name.startswith(".random-s") and p.is_dir()]


def test_lm_learns_and_loads_with_image_token(tmp_path, data):
    recipe = LMRecipe(width=32, layers=1, heads=2, intermediate=64, seq_len=16, steps=60, batch=16, lr=5e-3)
    folder = ensure_built("lm-s", tmp_path, recipe=recipe, data=data, log_fn=lambda *_: None)
    metrics = json.loads((folder / "zoo.json").read_text())["metrics"]
    assert metrics["loss_last"] < 0.6 * metrics["loss_first"]
    assert metrics["heldout_ppl"] < metrics["heldout_ppl_init"] / 3
    model, tok = build_llm(LLMConfig(name=f"hf:{folder}"), tmp_path)
    assert image_token_id(tok) == data.tokenizer.convert_tokens_to_ids("<image>")
    assert model.get_input_embeddings().weight.shape[0] == len(data.tokenizer)


def test_zoo_specs_build_from_a_tiny_world(tmp_path, monkeypatch):
    """`zoo:clip-s` / `zoo:lm-s` through build_encoder / build_llm, with a tiny embedded world as data."""
    world = WorldConfig(n_pretrain=40, n_train=48, n_test=4, n_demo=4, n_text_docs=8, n_interleaved_docs=4,
                        image_size=32)
    small = world.model_dump(mode="json")
    monkeypatch.setitem(RECIPES, "clip-s", EncoderRecipe("clip", **{**TINY_ENC, "steps": 5, "heldout": 8,
                                                                     "text_len": 48}, world=small))
    monkeypatch.setitem(RECIPES, "lm-s", LMRecipe(width=32, layers=1, heads=2, intermediate=64, seq_len=16,
                                                  steps=5, batch=4, world=small))
    enc = build_encoder(EncoderConfig(name="zoo:clip-s", resolution=48), tmp_path)
    assert enc.grid == (6, 6) and enc.dim == 32
    model, tok = build_llm(LLMConfig(name="zoo:lm-s"), tmp_path)
    assert tok.convert_tokens_to_ids("<image>") != tok.unk_token_id
    status = {entry.spec: (entry.built, entry.folder, entry.metrics) for entry in zoo_status(tmp_path)}
    assert status["zoo:clip-s"][0] and status["zoo:lm-s"][0] and not status["zoo:aim-s"][0]
    assert "probe_i2t_top1" in status["zoo:clip-s"][2] and status["zoo:aim-s"][2] is None
    assert zoo_build.build_zoo(["zoo:clip-s"], tmp_path) == [status["zoo:clip-s"][1]]


def _ink_box(img: Image.Image) -> tuple[int, int, int, int]:
    dark = Image.eval(img.convert("L"), lambda v: 255 if v < 128 else 0)
    return dark.getbbox()


@pytest.fixture(scope="module")
def word_data(tmp_path_factory):
    """Images holding one of four words (large ink, random place) and captions naming it."""
    from ablate.world.fonts import font

    root = tmp_path_factory.mktemp("words")
    rng = random.Random(1)
    words = ["cat", "sun", "key", "owl"]
    captions = []
    for i in range(320):
        word = rng.choice(words)
        img = Image.new("RGB", (32, 32), (245, 245, 245))
        ImageDraw.Draw(img).text((rng.randint(0, 6), rng.randint(0, 14)), word, font=font(12), fill=(20, 20, 20))
        path = root / f"{i}.png"
        img.save(path)
        box = [c / 32 for c in _ink_box(img)]
        captions.append({"image": str(path), "alt": "a word", "rich": f"the word is {word} .", "words": [word],
                         "word_sizes": ["large"], "word_boxes": [box]})
    texts = [c["rich"] for c in captions]
    return ZooData(captions=captions, texts=lambda: texts, tokenizer=build_tokenizer(texts), identity="test-words")


@pytest.mark.slow
def test_reading_head_learns_to_name_the_word_at_every_trained_resolution(tmp_path, word_data):
    recipe = EncoderRecipe("clip", **{**TINY_ENC, "steps": 400, "heldout": 64}, ocr=1.0, extra_resolutions=(48,))
    folder = ensure_built("clip-s", tmp_path, recipe=recipe, data=word_data, log_fn=lambda *_: None)
    metrics = json.loads((folder / "zoo.json").read_text())["metrics"]
    # four words: chance 0.25; the contrastive loss alone cannot tell them apart better than the captions can
    assert metrics["read_top1_32_large"] > 0.6 and metrics["read_top1_48_large"] > 0.6
    assert "reader" not in " ".join(p.name for p in folder.iterdir())  # only the towers are saved
    enc = build_encoder(EncoderConfig(name=f"hf:{folder}", resolution=48), tmp_path)
    assert enc.grid == (6, 6)


def test_patch_targets_name_the_word_on_the_patches_its_ink_covers(word_data):
    from ablate.world.tokenizer import word_id
    from ablate.zoo.vision import patch_targets

    tok = word_data.tokenizer
    nothing, cat, owl = tok.pad_token_id, word_id(tok, "cat"), word_id(tok, "owl")
    rows = [{"words": ["cat"], "word_boxes": [[0.0, 0.0, 0.5, 0.25]]},          # top-left quarter-row
            {"words": ["cat", "owl"], "word_boxes": [[0.5, 0.5, 1.0, 1.0], [0.0, 0.9, 0.1, 1.0]]}]
    t = patch_targets(tok, rows, size=32, patch=8, nothing=nothing).view(2, 4, 4)
    assert (t[0, 0, :2] == cat).all() and (t[0] == cat).sum() == 2  # 2 of the 16 patches
    assert (t[1, 2:, 2:] == cat).all() and (t[1] == cat).sum() == 4
    # the owl box covers 40 % of the bottom-left patch: above the 15 % needed along both axes
    assert t[1, 3, 0] == owl and (t[1] == owl).sum() == 1
    assert (t[1] == nothing).sum() == 11
    # at a finer grid (patch 4 on 32 px, 8 x 8) the same box covers more patches, the same share of the image
    fine = patch_targets(tok, rows[:1], size=32, patch=4, nothing=nothing)
    assert (fine == cat).sum() == 8


def test_reading_loss_counts_each_word_once_however_many_patches_it_covers():
    from ablate.zoo.vision import ReadingHead

    head = ReadingHead(width=4, vocab_size=4, nothing=0)
    with torch.no_grad():
        head.score.weight.copy_(torch.eye(4))
        head.score.bias.zero_()
    confident = lambda ids: 20.0 * torch.nn.functional.one_hot(torch.tensor(ids), 4).float()  # noqa: E731
    # image A: a large word (id 1) on 8 patches, read right; image B: a small word (id 2) on 1 patch, read as 3
    patches = torch.stack([confident([1] * 8 + [0] * 8), confident([3] + [0] * 15)])
    targets = torch.tensor([[1] * 8 + [0] * 8, [2] + [0] * 15])
    # per word: (0 + 20) / 2 = 10; weighting patches instead would give 20 / 9
    assert head.loss(patches, targets).item() == pytest.approx(10.0, abs=0.01)
    assert head.read(patches).tolist() == [1, 3]
