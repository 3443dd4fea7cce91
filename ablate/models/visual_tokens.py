"""How many visual tokens an image takes in the LLM's sequence, and where the slice separators go.

With `resize` / `pad` an image is one crop: `tokens` image-token ids. With `slice` (LLaVA-UHD) it is an overview
crop followed by rows x cols slices, each `tokens` image-token ids; the layout is marked for the LLM with text
separators, as LLaVA-UHD does: one after each slice of a row and another after each row. The collator (training)
and the MLLM (generation) both build an image's block here, so the two always agree with the encoder's crops.
"""
from __future__ import annotations

from functools import lru_cache

from PIL import Image

from ablate.config.schema import EncoderConfig
from ablate.images import choose_partition

SLICE_SEPARATORS = (",", ";", ":", "|")
ROW_SEPARATORS = ("\n", ".", ";")


def _single_token(tokenizer, candidates: tuple[str, ...], avoid: int | None = None) -> int:
    """The id of the first candidate that is one token: as the tokenizer encodes it alone, else as a bare vocabulary
    entry (a sentencepiece-style tokenizer encodes "," alone as "▁" + "," but has "," itself)."""
    for text in candidates:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1 and text in tokenizer.get_vocab():
            ids = [tokenizer.get_vocab()[text]]
        if len(ids) == 1 and ids[0] != tokenizer.unk_token_id and ids[0] != avoid:
            return ids[0]
    raise ValueError(f"the tokenizer has none of {candidates!r} as a single token to separate image slices")


class ImageTokens:
    """`block(image) -> list[int]`: the token ids standing for one image (a path or a PIL image)."""

    def __init__(self, encoder_cfg: EncoderConfig, tokens: int, image_token_id: int, tokenizer=None):
        self.cfg, self.tokens, self.image_token_id = encoder_cfg, tokens, image_token_id
        self.slicing = encoder_cfg.image_handling == "slice"
        if self.slicing:
            self.slice_sep = _single_token(tokenizer, SLICE_SEPARATORS)
            self.row_sep = _single_token(tokenizer, ROW_SEPARATORS, avoid=self.slice_sep)

    def layout(self, image: str | Image.Image) -> tuple[int, int]:
        """(rows, cols) of slices besides the overview; (0, 0) when the image is one crop."""
        if not self.slicing:
            return 0, 0
        size = image.size if isinstance(image, Image.Image) else _image_size(str(image))
        r = self.cfg.resolution
        return choose_partition(size[0], size[1], r, r, self.cfg.max_slices)

    def crops(self, image: str | Image.Image) -> int:
        rows, cols = self.layout(image)
        return 1 + rows * cols

    def block(self, image: str | Image.Image) -> list[int]:
        crop = [self.image_token_id] * self.tokens
        rows, cols = self.layout(image)
        ids = list(crop)
        for _ in range(rows):
            for _ in range(cols):
                ids += crop + [self.slice_sep]
            ids.append(self.row_sep)
        return ids


@lru_cache(maxsize=65536)
def _image_size(path: str) -> tuple[int, int]:
    with Image.open(path) as img:   # reads the header only
        return img.size
