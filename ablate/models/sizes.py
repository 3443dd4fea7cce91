"""Rough sizes of a cell before anything is built, for the dry run: the memory one training step's activations take,
and the FLOPs its training takes (`training_flops`: 6 x parameters x tokens, as scaling-law papers count).

An estimate, not a measurement: per token of a micro-batch (`train.batch_size / train.grad_accum` rows of
`data.max_length` tokens), each LLM layer keeps about 34 bytes per hidden unit in 16-bit precision for the backward
pass (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", without the attention
scores, which fused attention does not keep), doubled in float32, plus the logits and their gradient (vocabulary x
4 bytes x 2). Weights, optimiser state and the encoder are left out: for the cells this tool trains, the
activations are what grows with a careless setting. Read from the zoo recipe or the LLM's `config.json`, never by
building a model; None when neither can be read offline.
"""
from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

from ablate.config.schema import CellConfig
from ablate.config.spec import Spec, SpecError
from ablate.zoo.recipes import RECIPES, LMRecipe

GIB = 2**30
ZOO_VOCABULARY = 1024   # the world's tokenizer is smaller: an upper bound


@functools.lru_cache(maxsize=256)
def llm_dims(name: str) -> tuple[int, int, int] | None:
    """(hidden size, layers, vocabulary) of an LLM, or None (read once per name: a grid lists it per cell)."""
    try:
        spec = Spec.parse(name)
    except SpecError:
        return None
    recipe = RECIPES.get(spec.name) if spec.family == "zoo" else None
    if isinstance(recipe, LMRecipe):
        return recipe.width, recipe.layers, ZOO_VOCABULARY
    if spec.family != "hf":
        return None
    folder = Path(spec.name).expanduser()
    file = folder / "config.json" if folder.is_dir() else None
    if file is None:
        from huggingface_hub import try_to_load_from_cache  # lazy: only for an LLM named by hub id

        found = try_to_load_from_cache(spec.name, "config.json")
        file = Path(found) if isinstance(found, str) else None
    try:
        config = json.loads(file.read_text()) if file is not None else None
    except (OSError, ValueError):
        return None
    config = (config or {}).get("text_config") or config or {}
    dims = config.get("hidden_size"), config.get("num_hidden_layers"), config.get("vocab_size")
    return dims if all(isinstance(d, int) and d > 0 for d in dims) else None


def step_activation_bytes(config: CellConfig) -> int | None:
    """About how many bytes of activations one training step (one micro-batch) keeps; None when unknown."""
    dims = llm_dims(config.llm.name)
    if dims is None:
        return None
    hidden, layers, vocabulary = dims
    train = config.train
    tokens = math.ceil(train.batch_size / train.grad_accum) * config.data.max_length
    precision = 2 if train.precision == "bf16" else 4
    return tokens * (layers * hidden * 34 * precision // 2 + vocabulary * 4 * 2)


# what one device does, for the dry run's time estimate: one CPU core in float32 (a tiny LLM's matmuls reached about
# 9e10 FLOP/s on one core, docs/performance.md), one H100 at 40 % of its dense bf16 peak
CPU_CORE_FLOPS = 5e10
H100_FLOPS = 0.4 * 989.4e12
UNMEANT_S = 30 * 86400   # a cell that would train this long even on one H100 was not meant


def training_flops(config: CellConfig) -> float | None:
    """About how many FLOPs a cell's training takes: 6 x the LLM's parameters x its tokens (every row padded to
    `data.max_length`: an upper bound), the encoder and attention left out; None when the LLM's size is unknown or
    a budget sets the steps at the cell's start."""
    dims = llm_dims(config.llm.name)
    if dims is None or getattr(config.train, "budget", None) is not None:
        return None
    hidden, layers, vocabulary = dims
    parameters = layers * 12 * hidden * hidden + vocabulary * hidden
    return 6.0 * parameters * config.train.batch_size * config.data.max_length * config.train.steps


def machine_memory_bytes() -> int | None:
    """The machine's physical memory (the CPU's; a GPU's is known only once torch looks)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
