"""The world tokenizer: BPE with byte fallback (as Llama and Gemma), trained locally with `tokenizers`.

Any text can be encoded and decoded back unchanged (unicode included): a character the world never wrote is
spelled as its UTF-8 bytes (`<0x00>` ... `<0xFF>`, always in the vocabulary), so nothing is ever `<unk>`.
Every word the world writes is one token, as the tiny models need: training merges until no pair is left, so the
world's ~150 words (with their leading `▁`) each end up whole. Spaces become `▁` (sentencepiece style) and
punctuation is split off, so `lamp` in "the word is lamp." is the same token as in "lamp is red".

Special tokens: `<pad> <bos> <eos> <unk> <image>` (ids 0-4). The tokenizer adds none by itself (`tokenizer(text)`
gives the text's tokens only); the collator adds `<bos>`/`<eos>`.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>", "<image>")
BYTE_TOKENS: tuple[str, ...] = tuple(f"<0x{b:02X}>" for b in range(256))
SPACE = "▁"


def build_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """Train a byte-fallback BPE on the world's texts until every word is a single token."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    _pipeline(tok)
    trainer = trainers.BpeTrainer(vocab_size=1 << 16, min_frequency=1, special_tokens=list(SPECIAL_TOKENS),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    # the trainer knows nothing of byte fallback: append the 256 byte tokens to the trained vocabulary
    learned = tok.get_vocab()
    vocab = dict(sorted(learned.items(), key=lambda kv: kv[1]))
    for byte in BYTE_TOKENS:
        vocab.setdefault(byte, len(vocab))
    merges = [tuple(m) if not isinstance(m, str) else tuple(m.split(" ")) for m in _merges(tok)]
    tok.model = models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True)
    return wrap(tok)


def _pipeline(tok: Tokenizer) -> None:
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[^\w\s]"), behavior="isolated"),       # punctuation stands alone
        pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="first"),  # " word" -> "▁word"
    ])
    tok.decoder = decoders.Sequence([
        decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0),
    ])


def _merges(tok: Tokenizer) -> list:
    import json  # the merges are only reachable through the serialised model

    return json.loads(tok.to_str())["model"]["merges"]


def wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
        model_max_length=1 << 20,
        clean_up_tokenization_spaces=False,
    )


def word_id(tokenizer, word: str) -> int:
    """The single token id of `word` as it appears after a space (how the world's words are written)."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"{word!r} is {len(ids)} tokens for this tokenizer, not one")
    return ids[0]


def load_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast.from_pretrained(str(path))
