"""The world tokenizer: special tokens, the world's words whole, any text round-trips (byte fallback)."""
import pytest

from ablate.world.tokenizer import SPECIAL_TOKENS, word_id
from ablate.world.vocab import COLOURS, SHAPES, WORDS


def test_special_tokens_and_image_token(tiny_world):
    tok = tiny_world.tokenizer()
    ids = tok.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert ids == [0, 1, 2, 3, 4]
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok("<image> the word is")["input_ids"][0] == 4
    assert tok("the word is")["input_ids"] == tok("the word is", add_special_tokens=False)["input_ids"]


def test_the_worlds_texts_round_trip_with_every_word_one_token(tiny_world):
    tok = tiny_world.tokenizer()
    texts = list(tiny_world.corpus()) + [r["text"] for r in tiny_world.read("text_heldout")]
    for task in ("vqa", "textvqa", "caption"):
        for r in tiny_world.questions(task, "test"):
            texts += [r["question"], r["prompt"], *r["answers"]]
    bytes_ = set(tok.convert_tokens_to_ids([f"<0x{b:02X}>" for b in range(256)]))
    for text in texts:
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids and not bytes_ & set(ids), text   # the world never needs a byte
        assert tok.decode(ids) == text
        words = text.replace(".", " ").replace(",", " ").replace("?", " ").replace(":", " ").split()
        assert len(ids) <= len(words) + text.count(".") + text.count(",") + text.count("?") + text.count(":")
    for word in [*SHAPES, *COLOURS, *WORDS[:12]]:
        assert len(tok(f"the {word}.")["input_ids"]) == 3, word      # "▁the", "▁<word>", "."
        assert tok.decode([word_id(tok, word)]) == word
    assert 256 < len(tok) < 1000


@pytest.mark.parametrize("text", [
    "Yes, it's a cat.", "héllo wörld", "你好，世界", "emoji 🙂👍🏽 and ∑ x²", "tabs\tand\nnew lines",
    "two  spaces  inside", "UPPER lower MiXeD", "numbers 12345 and 3.14", "ÅÄÖ ÿ ß", "",
])
def test_any_text_round_trips_without_unknown_tokens(tiny_world, text):
    tok = tiny_world.tokenizer()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text


def test_a_word_outside_the_world_is_spelled_not_lost(tiny_world):
    tok = tiny_world.tokenizer()
    ids = tok("yes", add_special_tokens=False)["input_ids"]
    assert len(ids) >= 1 and tok.unk_token_id not in ids and tok.decode(ids) == "yes"
    with pytest.raises(ValueError, match="not one"):
        word_id(tok, "xylophone")
