"""Tiny backbones pretrained here on the embedded world: `zoo:{clip,siglip,aim,random}-{s,m}`, `zoo:lm-{s,m}`.

The names below are loaded on first use, so `ablate.zoo.recipes` (what a grid's validation and cell ids need)
imports without torch.
"""
from __future__ import annotations

import importlib

_WHERE = {
    "build_zoo": "build", "ensure_built": "build", "model_dir": "build", "zoo_status": "build",
    "ship_zoo": "build", "shipped_folder": "build", "ZooEntry": "build", "ZooData": "data",
    "RECIPES": "recipes", "EncoderRecipe": "recipes", "LMRecipe": "recipes", "recipe_for": "recipes",
    "recipe_hash": "recipes",
}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"ablate.zoo.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ablate.zoo' has no attribute {name!r}")
