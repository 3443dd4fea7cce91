"""Recipes of the tiny pretrained backbones: everything that determines the weights, hashed into the cache path.

Encoders (small ViTs, patch 8, transformers `CLIPVisionModel` so they load like any hub checkpoint):
- `clip-*`: symmetric contrastive loss against a tiny text tower (CLIP, Radford et al., 2021);
- `siglip-*`: pairwise sigmoid loss (SigLIP, Zhai et al., 2023);
- `aim-*`: autoregressive next-patch pixel regression under prefix-causal attention, per-patch normalised
  targets (AIM, El-Nouby et al., 2024);
- `random-*`: the same architecture, random init, not trained (the baseline an objective must beat);
- `clip-read-s`: `clip-s` that also learns to read (a per-patch reading loss, 96 and 160 px, its own 8,000
  pre-training images of a 12-word world): the encoder of `grids/connectors.yaml`.
LM: `lm-*`, a tiny Llama trained with next-token prediction on the world's text corpus, in 256-token blocks: an MLLM
sequence is up to 144 visual tokens plus a caption, and an LM that never saw a distance beyond its block learns to
read what lies further back only slowly (docs/backbones.md, "Reading").
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from ablate.config.schema import WorldConfig
from ablate.config.spec import zoo_name
from ablate.world.identity import world_hash

RECIPE_VERSION = 1  # bump when the training code changes what it produces


def _world() -> dict:
    return WorldConfig().model_dump(mode="json")


@dataclass(frozen=True)
class EncoderRecipe:
    objective: str                 # clip | siglip | aim | random
    width: int = 96
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    patch: int = 8
    resolution: int = 96           # the saved model's native size
    extra_resolutions: tuple[int, ...] = ()  # also trained at these (cycled per step), position embeddings interpolated
    ocr: float = 0.0               # weight of the reading loss: name the words drawn in the image (0: off)
    steps: int = 200
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: float = 0.1
    embed_dim: int = 96            # joint image-text space (clip / siglip)
    text_width: int = 96
    text_layers: int = 1
    text_len: int = 64
    heldout: int = 256             # last caption records kept out of training for retrieval
    probe_train: int = 1024        # records fitting the retrieval probe
    seed: int = 0
    world: dict = field(default_factory=_world)
    version: int = RECIPE_VERSION

    @property
    def kind(self) -> str:
        return "encoder"


@dataclass(frozen=True)
class LMRecipe:
    width: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 384
    seq_len: int = 256             # longer than visual tokens + caption: the MLLM's text must reach back to its image
    steps: int = 200
    batch: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.05
    seed: int = 0
    world: dict = field(default_factory=_world)
    version: int = RECIPE_VERSION

    @property
    def kind(self) -> str:
        return "lm"


Recipe = EncoderRecipe | LMRecipe

# CLIP + reading: at this budget the contrastive loss alone never tells the drawn words apart (held-out reading stays
# at chance); a per-patch reading loss, seen at 160 px two steps in three, makes it read (docs/backbones.md, "Reading").
_READING_WORLD = WorldConfig(n_pretrain=8000, n_words=12).model_dump(mode="json")
_READ = {"ocr": 3.0, "extra_resolutions": (160, 160), "lr": 3e-3, "warmup": 0.05, "batch": 32, "steps": 600,
         "world": _READING_WORLD}
_M = {"width": 192, "layers": 6, "heads": 6, "steps": 500, "lr": 2e-3, "text_width": 128, "text_layers": 2,
      "embed_dim": 128}
RECIPES: dict[str, Recipe] = {
    "clip-s": EncoderRecipe("clip"),
    "clip-read-s": EncoderRecipe("clip", **_READ),
    "siglip-s": EncoderRecipe("siglip"),
    "aim-s": EncoderRecipe("aim", lr=1e-3),
    "random-s": EncoderRecipe("random", steps=0),
    "clip-m": EncoderRecipe("clip", **_M),
    "siglip-m": EncoderRecipe("siglip", **_M),
    "aim-m": EncoderRecipe("aim", **{**_M, "lr": 1e-3}),
    "random-m": EncoderRecipe("random", **{**_M, "steps": 0}),
    "lm-s": LMRecipe(),
    "lm-xs": LMRecipe(layers=2),   # the default grid's LM: a step costs about 0.4x lm-s's (docs/performance.md)
    "lm-m": LMRecipe(width=256, layers=6, heads=8, intermediate=768, steps=600),
}


def recipe_for(spec: str) -> Recipe:
    name = zoo_name(spec)
    if name not in RECIPES:
        raise ValueError(f"unknown zoo model {spec!r}; known: {', '.join('zoo:' + k for k in RECIPES)}")
    return RECIPES[name]


def world_identity(world_cfg: dict) -> str:
    """The identity of the embedded world a recipe trains on (part of its cache hash)."""
    return f"world-{world_hash(WorldConfig(**world_cfg))}"


def recipe_hash(recipe: Recipe, data_identity: str = "") -> str:
    return fields_hash(recipe.kind, asdict(recipe), data_identity)


def fields_hash(kind: str, fields: dict, data_identity: str) -> str:
    """The hash of a recipe given as plain fields (a recipe's `asdict`, or the `recipe` of a built `zoo.json`)."""
    what = {"kind": kind, **fields, "data": data_identity}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


def tiny(recipe: Recipe, **changes) -> Recipe:
    """A copy with some fields changed (tests, quick runs)."""
    return replace(recipe, **changes)
