"""Shipped zoo weights: installed instead of training when their recipe hash matches, verified file by file, never
used when stale or corrupt; `--force` retrains; `ablate zoo ship` writes what the package data carries.

Training is replaced by fakes that save tiny real HF folders (and count calls), so nothing here pretrains.
"""
import dataclasses
import glob
import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch

from ablate import cli
from ablate.config.schema import EncoderConfig, LLMConfig
from ablate.models.encoders import build_encoder
from ablate.models.llm import build_llm
from ablate.zoo import (
    RECIPES,
    EncoderRecipe,
    LMRecipe,
    ZooData,
    ensure_built,
    model_dir,
    shipped_folder,
    shipping,
    zoo_status,
)
from ablate.zoo.recipes import recipe_hash, world_identity

ROOT = Path(__file__).resolve().parents[2]
DATA = ZooData(captions=[], texts=lambda: [], tokenizer=None, identity="test-shipping")
LM = LMRecipe(width=16, layers=1, heads=2, intermediate=32, seq_len=16, steps=1, batch=2)
ENC = EncoderRecipe("clip", width=16, layers=1, heads=2, resolution=32, steps=1)


@pytest.fixture(autouse=True)
def _zoo_log_heard():
    """A library's `logging.config` call earlier in the test run (lmms-eval, mlflow) may have disabled this module's
    logger or all logging: these tests read its lines, so they hear it again, and leave things as they were."""
    from ablate.zoo import build

    disabled, global_off = build.log.disabled, logging.root.manager.disable
    build.log.disabled = False
    logging.disable(logging.NOTSET)
    yield
    build.log.disabled = disabled
    logging.disable(global_off)


@pytest.fixture
def trained(monkeypatch, tmp_path):
    """Fake trainers (a tiny Llama + world tokenizer; a tiny CLIPVisionModel + preprocessor + text tower), the
    shipped weights in tmp, the world replaced by DATA (with the world's identity). Returns what was trained."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    from ablate.world.tokenizer import build_tokenizer

    calls = []

    def train_lm(recipe, data, out, log):
        calls.append("lm")
        tok = build_tokenizer(["the word is cat .", "a red square"])
        torch.manual_seed(len(calls))
        LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, num_key_value_heads=2, bos_token_id=tok.bos_token_id,
                                     eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).save_pretrained(out)
        tok.save_pretrained(out)
        return {"heldout_ppl": 2.0}

    def train_encoder(recipe, data, out, log):
        calls.append("encoder")
        torch.manual_seed(len(calls))
        CLIPVisionModel(CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, patch_size=8, image_size=32)).save_pretrained(out)
        (out / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.25] * 3}))
        (out / "text_tower").mkdir()
        torch.save({"v_proj": {}}, out / "text_tower" / "projections.pt")
        return {"probe_i2t_top1": 0.1, "chance": 0.01}

    monkeypatch.setattr("ablate.zoo.language.train_lm", train_lm)
    monkeypatch.setattr("ablate.zoo.vision.train_encoder", train_encoder)
    monkeypatch.setattr("ablate.zoo.build.world_data",
                        lambda world, cache: dataclasses.replace(DATA, identity=world_identity(world)))
    monkeypatch.setattr(shipping, "SHIPPED_ROOT", tmp_path / "shipped")
    return calls


def _build_and_ship(spec, recipe, tmp_path) -> Path:
    built = ensure_built(spec, tmp_path / "maintainer", recipe=recipe, data=DATA)
    folder, manifest = shipping.ship(built)
    assert folder == shipping.root() / built.name
    return folder


def test_matching_shipped_folder_is_installed_and_nothing_trains(trained, tmp_path, caplog):
    shipped_lm = _build_and_ship("lm-s", LM, tmp_path)
    shipped_enc = _build_and_ship("clip-s", ENC, tmp_path)
    assert trained == ["lm", "encoder"]
    # what loading needs, and only that: the text tower (retrieval figures, already in zoo.json) stays behind
    assert sorted(p.name for p in shipped_enc.iterdir()) == ["config.json", "model.safetensors",
                                                             "preprocessor_config.json", "shipped.json", "zoo.json"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "zoo.json"} <= {p.name for p in shipped_lm.iterdir()}

    def boom(*args, **kwargs):
        raise AssertionError("trained although shipped")

    user, said = tmp_path / "user", []
    with caplog.at_level(logging.INFO, logger="ablate.zoo.build"):
        lm = ensure_built("zoo:lm-s", user, recipe=LM, data=DATA)
        enc = ensure_built("zoo:clip-s", user, recipe=ENC, data=DATA, log_fn=lambda text: said.append(text))
    assert trained == ["lm", "encoder"]     # nothing trained for the user
    assert lm == model_dir("lm-s", user, LM, DATA.identity) and lm.name == shipped_lm.name
    for folder, source in ((lm, shipped_lm), (enc, shipped_enc)):
        assert shipping.is_shipped_install(folder)
        assert {p.name for p in folder.iterdir()} == {p.name for p in source.iterdir()}
        assert all((folder / p.name).read_bytes() == p.read_bytes() for p in source.iterdir())
    line = [r.getMessage() for r in caplog.records if "shipped" in r.getMessage()]
    assert len(line) == 1 and recipe_hash(LM, DATA.identity) in line[0]
    assert "ablate zoo build --force zoo:lm-s" in line[0]
    assert len(said) == 1 and "shipped" in said[0] and "--force zoo:clip-s" in said[0]
    assert not [p for p in (user / "zoo").iterdir() if p.is_dir() and p.name.startswith(".")]   # no staging left
    # the installed folders load through the normal specs' code path
    encoder = build_encoder(EncoderConfig(name=f"hf:{enc}", resolution=32), user)
    assert encoder.grid == (4, 4) and encoder.dim == 16
    model, tok = build_llm(LLMConfig(name=f"hf:{lm}"), user)
    assert tok.convert_tokens_to_ids("<image>") != tok.unk_token_id
    # a later call is a cache hit: nothing copied or trained again
    assert ensure_built("lm-s", user, recipe=LM, data=DATA, log_fn=boom) == lm


def test_stale_shipped_folder_is_not_used(trained, tmp_path):
    shipped_lm = _build_and_ship("lm-s", LM, tmp_path)
    newer = LMRecipe(**{**LM.__dict__, "steps": 2})           # the recipe changed after shipping
    folder = ensure_built("lm-s", tmp_path / "user", recipe=newer, data=DATA)
    assert trained == ["lm", "lm"] and not shipping.is_shipped_install(folder)
    assert shipping.state("lm-s", folder.name) == "stale" and shipping.state("lm-s", shipped_lm.name) == "yes"
    # renamed to the new recipe's hash, the old weights are still refused: their zoo.json names the old recipe
    shipped_lm.rename(shipping.root() / f"lm-s-{recipe_hash(newer, DATA.identity)}")
    with pytest.raises(shipping.CorruptShipped, match="recipe"):
        shipping.verify(shipping.root() / f"lm-s-{recipe_hash(newer, DATA.identity)}")
    ensure_built("lm-s", tmp_path / "user2", recipe=newer, data=DATA)
    assert trained == ["lm", "lm", "lm"]


@pytest.mark.parametrize("damage", ["flip a byte", "delete a file", "truncate the manifest"])
def test_corrupt_shipped_folder_is_refused_and_the_model_trained(trained, tmp_path, caplog, damage):
    shipped_lm = _build_and_ship("lm-s", LM, tmp_path)
    weights = shipped_lm / "model.safetensors"
    if damage == "flip a byte":
        blob = bytearray(weights.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        weights.write_bytes(bytes(blob))
    elif damage == "delete a file":
        (shipped_lm / "tokenizer.json").unlink()
    else:
        (shipped_lm / "shipped.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger="ablate.zoo.build"):
        folder = ensure_built("lm-s", tmp_path / "user", recipe=LM, data=DATA)
    assert trained == ["lm", "lm"] and not shipping.is_shipped_install(folder)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "corrupt" in warning and "training here instead" in warning and str(shipped_lm) in warning
    if damage != "truncate the manifest":
        assert ("model.safetensors differs" if damage == "flip a byte" else "tokenizer.json missing") in warning
    assert not [p for p in (tmp_path / "user" / "zoo").iterdir() if p.is_dir() and p.name.startswith(".")]


def test_force_retrains_over_a_cached_or_shipped_folder(trained, tmp_path):
    _build_and_ship("lm-s", LM, tmp_path)
    user = tmp_path / "user"
    installed = ensure_built("lm-s", user, recipe=LM, data=DATA)
    assert trained == ["lm"] and shipping.is_shipped_install(installed)
    forced = ensure_built("lm-s", user, recipe=LM, data=DATA, force=True)
    assert forced == installed and trained == ["lm", "lm"] and not shipping.is_shipped_install(forced)
    before = (forced / "model.safetensors").read_bytes()
    assert ensure_built("lm-s", user, recipe=LM, data=DATA, force=True) == forced and trained == ["lm", "lm", "lm"]
    assert (forced / "model.safetensors").read_bytes() != before          # replaced (the fake seeds by call)
    assert [p.name for p in (user / "zoo").iterdir() if p.is_dir()] == [forced.name]   # nothing aside left


def test_cli_build_ship_ls_force(trained, tmp_path, monkeypatch, capsys):
    """The maintainer builds and ships; a user's `zoo build` installs them, `zoo ls` says from where, --force
    retrains. The registered lm-s recipe, its world replaced by DATA."""
    monkeypatch.setitem(RECIPES, "lm-s", LM)

    def zoo(*argv, home):
        assert cli.main(["zoo", *argv, "--home", str(tmp_path / home)]) == 0
        rows = re.findall(r"^(zoo:\S+) +(built here|shipped|no) +(yes|stale|no) ", capsys.readouterr().out, re.M)
        assert len(rows) == len(RECIPES)
        return {spec: [cache, package] for spec, cache, package in rows}

    assert zoo("build", "zoo:lm-s", home="maintainer")["zoo:lm-s"] == ["built here", "no"]
    with pytest.raises(SystemExit, match="not built"):
        cli.main(["zoo", "ship", "zoo:aim-s", "--home", str(tmp_path / "maintainer")])
    assert cli.main(["zoo", "ship", "zoo:lm-s", "--home", str(tmp_path / "maintainer")]) == 0
    shipped_line = capsys.readouterr().out
    assert "shipped zoo:lm-s ->" in shipped_line and "model.safetensors" in shipped_line and "MB" in shipped_line
    assert zoo("ls", home="user")["zoo:lm-s"] == ["no", "yes"]
    assert shipped_folder("zoo:lm-s") is not None and shipped_folder("zoo:clip-s") is None
    assert zoo("build", "zoo:lm-s", home="user")["zoo:lm-s"] == ["shipped", "yes"] and trained == ["lm"]
    with pytest.raises(SystemExit, match="shipped weights, not weights built here"):
        cli.main(["zoo", "ship", "zoo:lm-s", "--home", str(tmp_path / "user")])
    assert zoo("build", "--force", "zoo:lm-s", home="user")["zoo:lm-s"] == ["built here", "yes"]
    assert trained == ["lm", "lm"]
    status = {entry.spec: entry for entry in zoo_status(tmp_path / "user" / "cache")}
    assert status["zoo:lm-s"].origin == "built here" and status["zoo:aim-s"].shipped == "no"


def _package_data_globs() -> list[str]:
    tomllib = pytest.importorskip("tomllib")    # Python 3.11+ (the venv's); 3.10 has no TOML reader built in
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return pyproject["tool"]["setuptools"]["package-data"]["ablate.zoo"]


def test_package_data_glob_covers_every_shipped_file(trained, tmp_path):
    """`pip install .` (not editable) carries what `ablate zoo ship` writes, for both kinds of model."""
    package = tmp_path / "package"
    where = package / "shipped"
    for spec, recipe in (("lm-s", LM), ("clip-s", ENC)):
        shipping.ship(ensure_built(spec, tmp_path / "cache", recipe=recipe, data=DATA), where)
    real = ROOT / "ablate" / "zoo" / "shipped"
    if real.is_dir():       # and the weights shipped today
        shutil.copytree(real, where, dirs_exist_ok=True)
    files = {str(p.relative_to(package)) for p in where.rglob("*") if p.is_file()}
    assert len(files) >= 10
    covered = {match for pattern in _package_data_globs() for match in glob.glob(pattern, root_dir=package)}
    assert files <= covered, f"not in pyproject's package data: {sorted(files - covered)}"


def stale_shipped(root: Path) -> list[str]:
    """What is wrong with the shipped folders under `root`, each with the command that fixes it."""
    problems = []
    for folder in shipping.shipped_folders(root):
        name, _ = shipping.split_name(folder.name)
        if name not in RECIPES:
            problems.append(f"{folder.name}: no zoo model {name!r} is registered any more; delete the folder")
            continue
        current = model_dir(name, Path("/nonexistent")).name
        if folder.name != current:
            problems.append(f"{folder.name} no longer matches the recipe of zoo:{name} (now {current}): refresh it "
                            f"with `{shipping.refresh_command([name])}`")
            continue
        try:
            shipping.verify(folder)
        except shipping.CorruptShipped as err:
            problems.append(f"{folder.name} is corrupt ({err}): refresh it with `{shipping.refresh_command([name])}`")
    return problems


def test_shipped_weights_match_the_current_recipes():
    """Fails when a recipe, the world or its generator changed after the weights were shipped: the package would
    carry weights that no recipe uses (and the default grid would train them again on a user's first run)."""
    problems = stale_shipped(ROOT / "ablate" / "zoo" / "shipped")
    assert not problems, "stale shipped zoo weights (docs/backbones.md, 'Shipped weights'):\n" + "\n".join(problems)


def test_stale_check_names_the_refresh_command(trained, tmp_path, monkeypatch):
    monkeypatch.setitem(RECIPES, "lm-s", LM)
    shipping.ship(ensure_built("lm-s", tmp_path / "cache", data=None))
    assert stale_shipped(shipping.root()) == []
    monkeypatch.setitem(RECIPES, "lm-s", LMRecipe(**{**LM.__dict__, "steps": 3}))      # the recipe changed
    [problem] = stale_shipped(shipping.root())
    assert "no longer matches the recipe of zoo:lm-s" in problem
    assert "`ablate zoo build --force zoo:lm-s && ablate zoo ship zoo:lm-s`" in problem


def test_record_hash_is_the_recipe_hash():
    """A zoo.json's recipe and data give back the hash its folder is named by (what verify() checks)."""
    from dataclasses import asdict

    for recipe in (LM, ENC, RECIPES["clip-read-s"]):
        record = json.loads(json.dumps({"kind": recipe.kind, "recipe": asdict(recipe), "data": "world-x"}))
        assert shipping.record_hash(record) == recipe_hash(recipe, "world-x")
