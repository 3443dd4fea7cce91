"""The world tokenizer: word level over the world's whole vocabulary, built locally with `tokenizers`.

Lower-cases, splits on whitespace and punctuation, and knows the special tokens `<pad> <bos> <eos> <unk>
<image>`. It adds no special tokens by itself (`tokenizer(text)` gives the words only); the collator adds
`<bos>`/`<eos>`. Decoding gives the words joined by single spaces.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>", "<image>")


def build_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """Train a WordLevel tokenizer on every text of the world (each word kept, however rare)."""
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return wrap(tok)


def wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
        model_max_length=1 << 20,
    )


def load_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast.from_pretrained(str(path))
