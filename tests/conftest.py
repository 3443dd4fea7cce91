"""Shared fixtures: tiny real backbones saved with save_pretrained, a tiny world, a workspace in tmp.

Cells built from these go through the same code as real runs (`hf:<folder>` specs), in seconds on a CPU.
"""
from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest
from tinyworld import TINY_WORLD, write_tiny_grid

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TQDM_DISABLE", "1")



@pytest.fixture(scope="session")
def tiny_backbones(tmp_path_factory) -> dict[str, str]:
    """A 1-layer CLIP vision tower (patch 8) and a 1-layer Llama with the tiny world's tokenizer, saved to disk."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    from ablate.config.schema import WorldConfig
    from ablate.world import build_world

    root = tmp_path_factory.mktemp("backbones")
    world = build_world(WorldConfig(**TINY_WORLD), root / "cache")
    tokenizer = world.tokenizer()
    torch.manual_seed(0)
    encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                               num_attention_heads=2, patch_size=8, image_size=64))
    encoder.save_pretrained(root / "encoder")
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96,
                                       num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                       max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    llm.save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")
    return {"encoder": f"hf:{root / 'encoder'}", "llm": f"hf:{root / 'llm'}"}


@pytest.fixture
def tiny_grid(tmp_path, tiny_backbones):
    """Write a grid file over the tiny backbones; `axes` and extra base settings are YAML text."""

    def write(axes: str = "connector.name: [avg-pool, attn-pool]", steps: int = 12, extra: str = "",
              name: str = "tiny") -> Path:
        return write_tiny_grid(tmp_path, tiny_backbones, axes=axes, name=name, extra=extra,
                               train=f"steps: {steps}, batch_size: 4, checkpoint_every: 5, lr: 0.003",
                               evaluation="tasks: [world_vqa, world_textvqa], limit: 12, bootstrap: 50, batch_size: 12")

    return write


@pytest.fixture
def workspace(tmp_path):
    from ablate.workspace import Workspace

    return Workspace.create(home=tmp_path / "home", reports=tmp_path / "reports")


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every attempt to open a network connection; the list of addresses tried.

    'Fails fast offline' is asserted as 'tried no connection', not with a stopwatch a loaded machine breaks."""
    import socket

    tried: list = []

    def refuse(self, address, *args, **kwargs):
        tried.append(address)
        raise OSError(f"test: network connection to {address} refused")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return tried


@pytest.fixture(autouse=True)
def ablate_loggers_enabled():
    """ablate's loggers on for every test: a library's `logging.config.dictConfig` (its default
    `disable_existing_loggers`) run by an earlier test disables the loggers made before it, and caplog then reads
    nothing, whatever order the tests run in."""
    import logging

    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("ablate") and isinstance(logger, logging.Logger):
            logger.disabled = False


def pytest_collectreport(report):
    """Move what the imports so far allocated (torch, transformers: millions of objects) out of the cyclic
    garbage collector's reach: its full collections otherwise walk all of them again, time and again (about a
    third of the collection's CPU time). Reference counting still frees everything; only cycles among the
    frozen objects are never collected, and those are the imported modules'."""
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """The same after each test (tests import the heavy modules too): collect the test's own garbage, then freeze
    what is left alive, so later collections walk only what later tests allocate (about a tenth of the run)."""
    gc.collect()
    gc.freeze()


_deselected: list = []


def pytest_deselected(items):
    _deselected.extend(items)


def pytest_sessionfinish(session, exitstatus):
    """A tier that selects nothing here (`pytest -m slow tests/world`, or the fast tier of a folder of slow tests)
    passes instead of exiting 5 ('no tests collected'); a path that holds no test at all still exits 5."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and _deselected:
        session.exitstatus = pytest.ExitCode.OK


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not terminalreporter.stats.get("passed") and not terminalreporter.stats.get("failed") and _deselected:
        slow = sum(1 for item in _deselected if item.get_closest_marker("slow"))
        if slow and "slow" not in (config.getoption("markexpr") or "").replace("not slow", ""):
            terminalreporter.write_line(f"{slow} slow tests left out: run them with `pytest -m slow`")
