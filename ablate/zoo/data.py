"""What the zoo trains on: image-caption pairs and a text corpus, with the world tokenizer.

`world_data(world_cfg, cache_root)` reads them from the embedded world (`ablate.world`); tests build a
`ZooData` by hand from a few images.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ablate.config.schema import WorldConfig
from ablate.images import resize
from ablate.world import build_world
from ablate.zoo.recipes import world_identity


@dataclass
class ZooData:
    captions: list[dict]                       # {"image", "alt", "rich", "words", "word_sizes", "word_boxes"}
    texts: Callable[[], Iterable[str]]         # the LM corpus, re-iterable
    tokenizer: object                          # PreTrainedTokenizerFast with <pad> <bos> <eos> <unk> <image>
    heldout_texts: Callable[[], Iterable[str]] = lambda: ()
    identity: str = ""                         # part of the cache hash


def world_data(world_cfg: dict, cache_root: Path) -> ZooData:
    cfg = WorldConfig(**world_cfg)
    world = build_world(cfg, cache_root)
    captions = world.read("pretrain") if cfg.n_pretrain else world.read("caption")
    scenes = world.scenes()
    for row in captions:  # where each word's ink is, as fractions of the side (the reading loss's patch targets)
        scene = scenes[row["image"]]
        row["word_boxes"] = [[c / scene.image_size for c in w.box] for w in scene.words]
    return ZooData(
        captions=captions,
        texts=world.corpus,
        tokenizer=world.tokenizer(),
        heldout_texts=lambda: (r["text"] for r in world.read("text_heldout")),
        identity=world_identity(world_cfg),
    )


def load_pixels(paths: list[str], size: int) -> torch.Tensor:
    """uint8 `(n, 3, size, size)`, resized exactly as `VisionEncoder.preprocess` does with `resize`."""
    out = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as img:
            out[i] = torch.from_numpy(np.array(resize(img, size))).permute(2, 0, 1)
    return out


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1] (mean 0.5, std 0.5, written to the saved preprocessor_config.json)."""
    return pixels.float().div_(127.5).sub_(1.0)


def encode_texts(tokenizer, texts: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids `(n, length)` with <bos> ... <eos>, right-padded, and the attention mask."""
    pad = tokenizer.pad_token_id
    ids = torch.full((len(texts), length), pad, dtype=torch.long)
    for i, text in enumerate(texts):
        toks = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]][: length - 1]
        toks.append(tokenizer.eos_token_id)
        ids[i, : len(toks)] = torch.tensor(toks)
    return ids, (ids != pad).long()
