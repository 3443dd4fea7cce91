"""The world tokenizer: whole vocabulary, special tokens, round trip."""
import re

from ablate.world.tokenizer import SPECIAL_TOKENS


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+|[^\w\s]+", text.lower()))


def test_special_tokens_and_image_token(tiny_world):
    tok = tiny_world.tokenizer()
    ids = tok.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert ids == [0, 1, 2, 3, 4]
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok("<image> the word is")["input_ids"][0] == 4
    assert tok("the word is")["input_ids"] == tok("the word is", add_special_tokens=False)["input_ids"]


def test_round_trip_without_unknowns_over_the_whole_world(tiny_world):
    tok = tiny_world.tokenizer()
    texts = list(tiny_world.corpus()) + [r["text"] for r in tiny_world.read("text_heldout")]
    for task in ("vqa", "textvqa", "caption"):
        for r in tiny_world.questions(task, "test"):
            texts += [r["question"], r["prompt"], *r["answers"]]
    for text in texts:
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids, text
        assert tok.decode(ids) == _words(text)
    assert tok.decode(tok("The Word is LAMP.")["input_ids"]) == "the word is lamp ."
    assert len(tok) < 300  # word level over a closed world
