"""Learning-rate multipliers given in part, and the defaults per backbone kind (ablate.config.defaults)."""
from __future__ import annotations

import re

import pytest
import torch
from tinyworld import TINY_WORLD_YAML

from ablate.config.schema import CellConfig, TrainConfig
from ablate.config.stages import plan


def _grid(tmp_path, tiny_backbones, axes: str, train: str = "") -> list:
    from ablate.resolve import load_grid

    world = TINY_WORLD_YAML
    path = tmp_path / "grid.yaml"
    path.write_text(f"""name: partial
base:
  encoder: {{name: "{tiny_backbones['encoder']}", resolution: 64}}
  llm: {{name: "{tiny_backbones['llm']}"}}
  connector: {{tokens: 16}}
  data: {{world: {{{world}}}, max_length: 96}}
  train: {{steps: 2, batch_size: 4{train}}}
  eval: {{tasks: [world_vqa]}}
axes:
  {axes}
""")
    return load_grid(path).cells


def test_a_partial_mapping_keeps_the_defaults_of_the_modules_it_leaves_out():
    assert TrainConfig(lr_multipliers={"llm": 0.0}).lr_multipliers == {"encoder": 0.0, "connector": 1.0, "llm": 0.0}
    zoo = CellConfig.model_validate({"train": {"lr_multipliers": {"encoder": 0.1}}})
    assert zoo.train.lr_multipliers == {"encoder": 0.1, "connector": 1.0, "llm": 0.5} and zoo.train.lr == 2e-3
    # a stage's partial mapping is laid over the cell's merged one
    staged = CellConfig.model_validate({"train": {"lr_multipliers": {"encoder": 0.1}, "stages": [
        {"name": "a", "steps": 2, "lr_multipliers": {"connector": 0.5}}]}})
    assert plan(staged.train)[0].lr_multipliers == {"encoder": 0.1, "connector": 0.5, "llm": 0.5}


def test_the_zoo_keeps_its_values_and_a_pretrained_llm_gets_llava_style_ones():
    zoo = CellConfig()
    assert (zoo.train.lr, zoo.train.lr_multipliers) == (2e-3, {"encoder": 0.0, "connector": 1.0, "llm": 0.5})
    for name in ("hf:some/model", "gguf:/models/x.gguf"):
        cell = CellConfig.model_validate({"llm": {"name": name}})
        assert cell.train.lr == 1e-3 and cell.train.lr_multipliers == {"encoder": 0.0, "connector": 1.0, "llm": 0.0}
        lora = CellConfig.model_validate({"llm": {"name": name, "lora": {"r": 4}}})
        assert lora.train.lr * lora.train.lr_multipliers["llm"] == pytest.approx(2e-4)
        given = CellConfig.model_validate({"llm": {"name": name},
                                           "train": {"lr": 5e-3, "lr_multipliers": {"llm": 0.02}}})
        assert given.train.lr == 5e-3 and given.train.lr_multipliers == {"encoder": 0.0, "connector": 1.0, "llm": 0.02}
        # the dump holds the values that train: read back, the same cell
        assert CellConfig.model_validate_json(cell.canonical_json()).canonical_json() == cell.canonical_json()
    # a zoo cell dumps as it always did: the defaults are the fields' own, the new LLM options are left out
    assert '"lora"' not in zoo.canonical_json() and '"chat_template"' not in zoo.canonical_json()
    assert CellConfig.model_validate({"train": {}}).canonical_json() == zoo.canonical_json()


@pytest.mark.slow
def test_a_partial_multiplier_axis_trains_what_the_log_says(tmp_path, tiny_backbones, caplog):
    """`train.lr_multipliers.llm: [0.5, 0]` as an axis: the encoder stays frozen (its default), the LLM trains
    in the first cell only; the optimiser's log line, the feature-cache flag, the checkpoint's modules and the
    weights that actually move all agree."""
    from ablate.checkpoint import trained_modules
    from ablate.data import train_batches
    from ablate.models.build import build_mllm
    from ablate.train.optim import build_optimizer
    from ablate.world import build_world

    cells = _grid(tmp_path, tiny_backbones, "train.lr_multipliers.llm: [0.5, 0]", ", lr: 0.01")
    assert [c.config.train.lr_multipliers for c in cells] == [
        {"encoder": 0.0, "connector": 1.0, "llm": 0.5}, {"encoder": 0.0, "connector": 1.0, "llm": 0.0}]
    torch.set_num_threads(1)
    cache = tmp_path / "cache"
    for cell, llm_trains in zip(cells, (True, False)):
        cfg = cell.config
        torch.manual_seed(0)
        model = build_mllm(cfg, cache, device="cpu")
        assert model.features.frozen
        caplog.clear()
        with caplog.at_level("INFO", logger="ablate.train.optim"):
            optimizer, _ = build_optimizer(model, cfg.train)
        said = dict(re.findall(r"stage train: (\w+) (trains|frozen)", caplog.text))
        assert said == {"encoder": "frozen", "connector": "trains", "llm": "trains" if llm_trains else "frozen"}
        assert trained_modules(cfg) == [m for m in ("connector", "llm") if said[m] == "trains"]
        before = {name: [p.detach().clone() for p in getattr(model, name).parameters()] for name in said}
        batch = next(train_batches(cfg.data, build_world(cfg.data.world, cache), model.tokenizer,
                                   model.image_tokens, 4, 0))
        model.train()
        model(batch.input_ids, batch.attention_mask, batch.labels, batch.images).loss.backward()
        optimizer.step()
        for name, old in before.items():
            moved = any(not torch.equal(a, b.detach()) for a, b in zip(old, getattr(model, name).parameters()))
            assert moved == (said[name] == "trains"), name
