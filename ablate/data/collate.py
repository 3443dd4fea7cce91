"""Tokenise `{"text", "images"}` rows and collate them into a `Batch`.

Each `<image>` marker becomes a block of `visual_tokens_per_image` image-token ids (the MLLM splices the
connector's output there). Rows are `<bos> ... <eos>`, padded on the right. Truncation to `max_length` never
cuts an image's block in half: a block that does not fit is dropped whole, with its image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ablate.data.batch import Batch

IMAGE_MARKER = "<image>"
IGNORE = -100


@dataclass
class _Row:
    ids: list[int]
    is_image: list[bool]
    images: list[str]


class Collator:
    def __init__(self, tokenizer, visual_tokens_per_image, max_length: int):
        """`visual_tokens_per_image`: a count, or an object whose `block(path) -> list[int]` gives the ids of
        one image (`ablate.models.visual_tokens.ImageTokens`: slices and their separators)."""
        self.block = getattr(visual_tokens_per_image, "block", None)
        if self.block is None and visual_tokens_per_image < 1:
            raise ValueError(f"visual_tokens_per_image must be >= 1, got {visual_tokens_per_image}")
        self.tokenizer = tokenizer
        self.n_visual = visual_tokens_per_image if self.block is None else None
        self.max_length = max_length
        self.image_id = tokenizer.convert_tokens_to_ids(IMAGE_MARKER)
        if self.image_id is None or self.image_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {IMAGE_MARKER} token; add it as a special token first")
        self.bos_id = tokenizer.bos_token_id
        self.eos_id = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.eos_id if self.eos_id is not None else 0)

    def encode(self, text: str, images: list[str]) -> _Row:
        """One row: ids, which positions are visual tokens, and the images kept (truncation-aware)."""
        pieces = text.split(IMAGE_MARKER)
        if len(pieces) - 1 != len(images):
            raise ValueError(f"{len(pieces) - 1} {IMAGE_MARKER} markers but {len(images)} images in {text[:80]!r}")
        encoded = self.tokenizer([p.strip() for p in pieces], add_special_tokens=False)["input_ids"]
        ids: list[int] = [] if self.bos_id is None else [self.bos_id]
        is_image = [False] * len(ids)
        kept: list[str] = []
        for k, piece in enumerate(encoded):
            ids += piece
            is_image += [False] * len(piece)
            if k < len(images):
                block = self.block(images[k]) if self.block else [self.image_id] * self.n_visual
                if len(ids) + len(block) > self.max_length:
                    break  # this image's block would be cut: drop it and everything after it
                ids += block
                is_image += [True] * len(block)   # separators inside the block carry no loss either
                kept.append(images[k])
        if self.eos_id is not None:
            ids.append(self.eos_id)
            is_image.append(False)
        return _Row(ids[: self.max_length], is_image[: self.max_length], kept)

    def __call__(self, rows: list[dict]) -> Batch:
        encoded = [self.encode(r["text"], list(r.get("images") or [])) for r in rows]
        width = max(len(e.ids) for e in encoded)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, e in enumerate(encoded):
            n = len(e.ids)
            ids = torch.tensor(e.ids, dtype=torch.long)
            input_ids[i, :n] = ids
            attention[i, :n] = 1
            lab = ids.clone()
            lab[torch.tensor(e.is_image, dtype=torch.bool)] = IGNORE
            if self.bos_id is not None:
                lab[0] = IGNORE
            labels[i, :n] = lab
        return Batch(
            input_ids=input_ids,
            attention_mask=attention,
            labels=labels,
            images=[p for e in encoded for p in e.images],
            n_images=torch.tensor([len(e.images) for e in encoded], dtype=torch.long),
        )
