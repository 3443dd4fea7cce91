"""Grid files: expansion, labels, include/exclude, stable ids, and the errors users see for bad input."""
from pathlib import Path

import pytest

from ablate.config.errors import GridError
from ablate.resolve import load_grid

BASE = """
base:
  encoder: {name: "zoo:clip-s", resolution: 96}
  connector: {name: avg-pool, tokens: 64}
  train: {steps: 5}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(GridError) as info:
        load_grid(write(tmp_path, text))
    return str(info.value)


def test_cartesian_product_with_exclude_include_and_seeds(tmp_path):
    grid = load_grid(write(tmp_path, BASE + """
axes:
  connector.name: [avg-pool, attn-pool]
  connector.tokens: [16, 64]
exclude:
  - {connector.name: attn-pool, connector.tokens: 16}
include:
  - {connector.name: mlp, connector.tokens: 144}
seeds: [0, 1]
"""))
    combos = [(c.axes["connector.name"], c.axes["connector.tokens"], c.axes["train.seed"]) for c in grid.cells]
    assert len(combos) == (2 * 2 - 1 + 1) * 2          # the include is replicated over the seeds too
    assert ("attn-pool", 16, 0) not in combos
    assert ("mlp", 144, 0) in combos and ("mlp", 144, 1) in combos
    assert grid.axes == ["connector.name", "connector.tokens", "train.seed"]
    assert len({c.id for c in grid.cells}) == len(grid.cells)
    assert grid.fixed["encoder.resolution"] == 96


def test_cell_id_is_stable_and_independent_of_key_order(tmp_path):
    a = load_grid(write(tmp_path, BASE)).cells[0]
    reordered = """
base:
  train: {steps: 5}
  connector: {tokens: 64, name: avg-pool}
  encoder: {resolution: 96, name: "zoo:clip-s"}
"""
    b = load_grid(write(tmp_path, reordered)).cells[0]
    assert a.id == b.id and len(a.id) == 12
    changed = load_grid(write(tmp_path, BASE.replace("steps: 5", "steps: 6"))).cells[0]
    assert changed.id != a.id


def test_labelled_axis_values(tmp_path):
    grid = load_grid(write(tmp_path, BASE + """
axes:
  data.mixture:
    captions: {synthetic: 1.0}
    mm1: {caption: 0.45, interleaved: 0.45, text: 0.1}
"""))
    assert [c.axes["data.mixture"] for c in grid.cells] == ["captions", "mm1"]
    assert grid.cells[1].config.data.mixture == {"caption": 0.45, "interleaved": 0.45, "text": 0.1}


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(GridError, match="nope.yaml.*not found"):
        load_grid(tmp_path / "nope.yaml")


def test_malformed_yaml_names_the_line(tmp_path):
    message = error_of(tmp_path, "base:\n  connector: {name: mlp\n  train: [1, 2\n")
    assert "grid.yaml, line" in message and "not valid YAML" in message


def test_unknown_key_suggests_the_closest(tmp_path):
    message = error_of(tmp_path, BASE.replace("tokens: 64", "tokns: 64"))
    assert "connector.tokns" in message and "did you mean 'connector.tokens'" in message
    assert "line 4" in message
    message = error_of(tmp_path, BASE + "axis:\n  connector.tokens: [64]\n")
    assert "did you mean 'axes'" in message


def test_unknown_axis_key(tmp_path):
    message = error_of(tmp_path, BASE + "axes:\n  conector.tokens: [64]\n")
    assert "unknown key" in message and "did you mean 'connector'" in message


def test_unknown_connector_lists_the_allowed(tmp_path):
    message = error_of(tmp_path, BASE + "axes:\n  connector.name: [avg-pool, q-former]\n")
    assert "unknown connector 'q-former'" in message
    assert "did you mean 'qformer'" in message and "Allowed:" in message and "c-abstractor" in message
    assert "line 7" in message


def test_unknown_encoder_and_task(tmp_path):
    message = error_of(tmp_path, BASE.replace("zoo:clip-s", "zoo:clipp-s"))
    assert "encoder.name" in message and "clip-s" in message
    message = error_of(tmp_path, BASE + "  eval: {tasks: [world_vqa, world_txtvqa]}\n")
    assert "unknown task 'world_txtvqa'" in message and "world_textvqa" in message


def test_wrong_type_and_bad_literal(tmp_path):
    message = error_of(tmp_path, BASE.replace("steps: 5", "steps: many"))
    assert "train.steps" in message and "'many'" in message
    message = error_of(tmp_path, BASE.replace("resolution: 96", "resolution: 96, image_handling: crop"))
    assert "encoder.image_handling" in message and "resize" in message and "slice" in message


def test_empty_axis(tmp_path):
    message = error_of(tmp_path, BASE + "axes:\n  connector.tokens: []\n")
    assert "empty axis" in message and "connector.tokens" in message


def test_impossible_token_count(tmp_path):
    message = error_of(tmp_path, BASE + "axes:\n  connector.tokens: [64, 150]\n")
    assert "connector.tokens" in message and "150" in message and "avg-pool" in message
    assert "tokens=150" in message   # names the cell


def test_bad_mixture_weights(tmp_path):
    message = error_of(tmp_path, BASE + "  data: {mixture: {caption: -1, text: 1}}\n")
    assert "data.mixture" in message and ">= 0" in message
    message = error_of(tmp_path, BASE + "  data: {mixture: {captions: 1}}\n")
    assert "data.mixture" in message and "interleaved" in message


def test_repository_grids_are_valid():
    for path in sorted(Path(__file__).parents[2].joinpath("grids").glob("*.yaml")):
        grid = load_grid(path)
        assert grid.cells, path


def test_cell_id_changes_when_its_zoo_recipe_or_world_vocabulary_changes(tmp_path, monkeypatch):
    """A finished cell must not be taken for done after what its names stand for has changed."""
    from ablate.world import vocab
    from ablate.zoo.recipes import RECIPES, tiny

    before = load_grid(write(tmp_path, BASE)).cells[0].id
    monkeypatch.setitem(RECIPES, "clip-s", tiny(RECIPES["clip-s"], steps=RECIPES["clip-s"].steps + 1))
    after_recipe = load_grid(write(tmp_path, BASE)).cells[0].id
    monkeypatch.undo()
    assert load_grid(write(tmp_path, BASE)).cells[0].id == before
    monkeypatch.setattr(vocab, "WORDS", vocab.WORDS[:-1] + ("zebra",))
    after_words = load_grid(write(tmp_path, BASE)).cells[0].id
    assert len({before, after_recipe, after_words}) == 3


def test_cell_ids_of_the_connectors_grid_are_pinned():
    """A cell's id is its training identity (the eval block left out), so these changed once, on purpose, from the
    ids that included the eval block. Those are pinned as legacy ids: runs
    tagged with them are recognised as these cells' (`ablate.commands.adopt_legacy_runs`), so no finished cell
    of a grid run before is trained again. A legitimate change of what a cell means (world generator version, a zoo
    recipe) changes both lists: update them then, knowing that finished cells of the old ids are run again. Last
    changed on 2026-12-02: the BPE world tokenizer (world generator 4, new zoo recipe hashes) and the grid's new
    training data (instruction rows over 1,000 images, 400 steps); then its LM, `zoo:lm-xs` (2 layers), instead of
    `zoo:lm-s`. The legacy ids hold the eval block too: they changed with the grid's tasks (world_vqa left out)."""
    from ablate.resolve import legacy_cell_id

    grid = load_grid(Path(__file__).parents[2] / "grids" / "connectors.yaml")
    assert [c.id for c in grid.cells] == ["d2c5b5a80e94", "b915b2939aac", "367c49a9cb31", "75100310816a",
                                          "5385bb812cf2", "5f58f5bfa3e4", "c21bfd5c3829", "6375efa48f45"]
    assert [legacy_cell_id(c.config) for c in grid.cells] == [
        "39503a88a4da", "cef6389cf006", "77ca987209fb", "91205239135a",
        "722dd6981fe3", "c007db15e7f3", "01da041b3dd1", "f39a822e32db"]


def test_the_same_point_twice_is_one_cell(tmp_path):
    grid = load_grid(write(tmp_path, BASE + """
axes:
  connector.tokens: [16, 16, 64]
"""))
    assert [c.axes["connector.tokens"] for c in grid.cells] == [16, 64]


def test_unknown_connector_option_is_reported_under_options(tmp_path):
    message = error_of(tmp_path, BASE.replace("tokens: 64}", "tokens: 64, options: {foo: 1}}"))
    assert "key 'connector.options'" in message and "foo" in message and "Allowed: depth, hidden" in message


def test_config_does_not_import_the_registries():
    """config is plain data: reading and expanding a grid imports no world, zoo, models or evaluation module."""
    import subprocess
    import sys

    code = ("import sys; from ablate.config.grid import expand_grid; expand_grid(sys.argv[1]); "
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('ablate.')}))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parents[2] / "grids" / "connectors.yaml")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['config']"


@pytest.mark.parametrize("config", [{"patch_size": 8}, {"vision_config": {"patch_size": 8}}])
def test_hf_encoder_patch_grid_is_read_from_its_config_json(tmp_path, config):
    """The token check needs the encoder's patch grid: read from config.json (top level or vision_config), no model
    is built."""
    import json

    folder = tmp_path / "encoder"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    grid = BASE.replace('"zoo:clip-s", resolution: 96', f'"hf:{folder}", resolution: 64')
    assert load_grid(write(tmp_path, grid)).cells
    message = error_of(tmp_path, grid.replace("tokens: 64", "tokens: 100"))
    assert "8x8 patch grid" in message and "key 'connector.tokens'" in message


def test_an_include_key_that_is_no_axis_labels_the_other_cells_with_the_base_value(tmp_path):
    """A non-factorial grid: the include sets encoder.resolution, which no axis sweeps. The base cells carry the
    base value 96 as their label (never a missing value shown as `nan`), and their ids are those of the grid without
    the include."""
    plain = load_grid(write(tmp_path, BASE + "axes:\n  connector.tokens: [16, 64]\n"))
    grid = load_grid(write(tmp_path, BASE + """
axes:
  connector.tokens: [16, 64]
include:
  - {connector.tokens: 64, encoder.resolution: 128}
"""))
    assert grid.axes == ["connector.tokens", "encoder.resolution"]
    labels = [(c.axes["connector.tokens"], c.axes["encoder.resolution"]) for c in grid.cells]
    assert labels == [(16, 96), (64, 96), (64, 128)]
    assert [c.id for c in grid.cells[:2]] == [c.id for c in plain.cells]
