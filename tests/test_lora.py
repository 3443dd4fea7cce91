"""LoRA on the LLM (`llm.lora`, peft): adapters and connector train, the base weights never move."""
from __future__ import annotations

import pytest
import torch
from tinyworld import TINY_WORLD

from ablate.config.schema import CellConfig


def lora_cell(tiny_backbones, lora: dict | None = None, **train) -> CellConfig:
    llm = {"name": tiny_backbones["llm"]}
    if lora is not None:
        llm["lora"] = lora
    return CellConfig.model_validate({
        "encoder": {"name": tiny_backbones["encoder"], "resolution": 64}, "llm": llm, "connector": {"tokens": 16},
        "data": {"world": TINY_WORLD, "max_length": 96, "mixture": {"caption": 1.0}},
        "train": {"steps": 4, "batch_size": 4, "checkpoint_every": 100, "lr": 0.01, **train},
        "eval": {"tasks": ["world_vqa"]}})


def test_lora_is_left_out_of_a_cells_dump_until_asked_and_its_settings_are_checked(tiny_backbones):
    plain, lora = lora_cell(tiny_backbones), lora_cell(tiny_backbones, {"r": 4})
    assert '"lora"' not in plain.canonical_json() and '"lora":{"alpha":16.0' in lora.canonical_json()
    assert plain.canonical_json() != lora.canonical_json()          # a LoRA cell is another cell
    with pytest.raises(ValueError, match="r"):
        lora_cell(tiny_backbones, {"r": 0})
    with pytest.raises(ValueError, match="rank"):
        lora_cell(tiny_backbones, {"rank": 4})


@pytest.mark.slow
def test_with_lora_only_adapters_and_connector_train_and_the_base_is_unchanged(tiny_backbones, tmp_path, caplog):
    from test_stages import Record, train_cell

    from ablate.models.build import build_mllm
    from ablate.models.llm import is_adapter
    from ablate.world import build_world

    cfg = lora_cell(tiny_backbones, {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    assert cfg.train.lr_multipliers["llm"] > 0                      # the adapters learn by default
    cache = tmp_path / "cache"
    build_world(cfg.data.world, cache)
    torch.manual_seed(0)
    start = build_mllm(cfg, cache, device="cpu")
    base0 = {n: p.detach().clone() for n, p in start.llm.named_parameters() if not is_adapter(n)}
    adapters0 = {n: p.detach().clone() for n, p in start.llm.named_parameters() if is_adapter(n)}
    assert adapters0 and all(".q_proj." in n or ".v_proj." in n for n in adapters0)
    with caplog.at_level("INFO"):
        model, state = train_cell(cfg, cache, Record())
    assert "LoRA adapters, base frozen" in caplog.text and state.step == 4
    named = dict(model.llm.named_parameters())
    for name, value in base0.items():                               # not one base weight moved
        assert torch.equal(named[name].detach(), value), name
    assert all(not named[n].requires_grad for n in base0) and all(named[n].requires_grad for n in adapters0)
    assert any(not torch.equal(named[n].detach(), v) for n, v in adapters0.items())   # the adapters learned
    assert not all(torch.equal(a.detach(), b.detach()) for a, b in zip(model.connector.parameters(),
                                                                       start.connector.parameters()))
    assert all(torch.equal(a.detach(), b.detach()) for a, b in zip(model.encoder.parameters(),
                                                                   start.encoder.parameters()))
