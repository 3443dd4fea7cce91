"""Checkpoints store only what trained: frozen LLM < LoRA adapters < a fully trained LLM (tied embeddings once);
a reload rebuilds the base from its spec and gives back the trained model exactly."""
from __future__ import annotations

import json

import pytest
import torch
from tinyworld import TINY_WORLD

from ablate.config.schema import CellConfig


@pytest.fixture(scope="module")
def tied_llm(tiny_backbones, tmp_path_factory) -> str:
    """The tiny Llama of `tiny_backbones` with its output head tied to the input embeddings."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    source = tiny_backbones["llm"][len("hf:"):]
    folder = tmp_path_factory.mktemp("tied") / "llm"
    config = LlamaConfig.from_pretrained(source)
    config.tie_word_embeddings = True
    torch.manual_seed(1)
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return f"hf:{folder}"


def cell(tiny_backbones, llm: str, llm_rate: float, lora: dict | None = None) -> CellConfig:
    return CellConfig.model_validate({
        "encoder": {"name": tiny_backbones["encoder"], "resolution": 64},
        "llm": {"name": llm, **({"lora": lora} if lora else {})}, "connector": {"tokens": 16},
        "data": {"world": TINY_WORLD, "max_length": 96},
        "train": {"steps": 2, "batch_size": 4, "lr_multipliers": {"llm": llm_rate}}, "eval": {"tasks": ["world_vqa"]}})


def _train_a_little(model, cfg):
    """What training does to the stored parameters, without the data: every parameter that trains moves."""
    from ablate.train.optim import param_groups

    groups = param_groups(model, cfg.train)
    with torch.no_grad():
        for group in groups:
            for p in group["params"]:
                p.add_(torch.randn_like(p) * 0.01)


@pytest.mark.slow
def test_a_checkpoint_holds_what_trained_and_reloads_exactly(tiny_backbones, tied_llm, tmp_path):
    from ablate.checkpoint import load_for_eval, save_checkpoint
    from ablate.models.build import build_mllm

    torch.set_num_threads(1)
    cases = {"frozen": cell(tiny_backbones, tied_llm, 0.0), "lora": cell(tiny_backbones, tied_llm, 0.2, {"r": 2}),
             "full": cell(tiny_backbones, tied_llm, 0.02)}
    sizes, llm_keys = {}, {}
    for name, cfg in cases.items():
        torch.manual_seed(0)
        model = build_mllm(cfg, tmp_path / "cache", device="cpu")
        _train_a_little(model, cfg)
        folder = save_checkpoint(tmp_path / name, model, cfg)
        sizes[name] = (folder / "model.safetensors").stat().st_size
        meta = json.loads((folder / "config.json").read_text())
        from safetensors import safe_open

        with safe_open(folder / "model.safetensors", "pt") as f:
            keys = list(f.keys())
            dtypes = {f.get_tensor(k).dtype for k in keys}
        llm_keys[name] = [k for k in keys if k.startswith("llm.")]
        assert dtypes == {torch.float32}                             # the dtype it trained in
        if name == "full":
            assert "llm.lm_head.weight" not in keys and meta["aliases"] == {"llm.lm_head.weight":
                                                                          "llm.model.embed_tokens.weight"}
            unique = {p.data_ptr(): p.numel() * p.element_size() for p in model.llm.parameters()}
            assert sum(unique.values()) < sizes[name] < sum(unique.values()) + 2**20 + sizes["frozen"]
        else:
            assert meta["base"]["llm"]["spec"] == tied_llm and len(meta["base"]["llm"]["weights"]) == 16
        assert meta["stored"].get("llm") == {"frozen": None, "lora": "adapters", "full": "all"}[name]
        again = load_for_eval(folder, tmp_path / "cache", device="cpu")   # the base rebuilt from its spec
        want, got = model.state_dict(), again.state_dict()
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want), name
        assert again.llm.lm_head.weight.data_ptr() == again.llm.model.embed_tokens.weight.data_ptr()
    assert llm_keys["frozen"] == [] and all("lora_" in k for k in llm_keys["lora"])
    assert sizes["frozen"] < sizes["lora"] < sizes["full"]


@pytest.mark.slow
def test_a_checkpoint_whose_base_changed_is_refused(tiny_backbones, tmp_path):
    from ablate.checkpoint import load_for_eval, save_checkpoint
    from ablate.models.build import build_mllm

    cfg = cell(tiny_backbones, tiny_backbones["llm"], 0.0)
    folder = save_checkpoint(tmp_path / "ck", build_mllm(cfg, tmp_path / "cache", device="cpu"), cfg)
    meta = json.loads((folder / "config.json").read_text())
    meta["base"]["llm"]["weights"] = "0" * 16
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="the files behind it changed"):
        load_for_eval(folder, tmp_path / "cache", device="cpu")
