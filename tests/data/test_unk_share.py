"""The share of unknown tokens in training sources: measured with the cell's tokenizer, warned above 2 %."""
import json
import logging

import pytest
from wordlevel import word_tokenizer

from ablate.config.schema import DataConfig, SourceConfig
from ablate.data.vocabulary import WARN_SHARE, source_unk_metrics, unk_share

PROMPT_WORDS = "is the circle red blue Answer question using a single word or phrase .".split()


@pytest.fixture
def yes_no_source(tmp_path, png):
    """4 questions, 2 answered "yes" (a word the word-level tokenizer lacks), 2 "red"."""
    rows = [{"image": png(f"{i}.png"), "question": "is the circle red" if i % 2 else "the circle is",
             "answers": ["yes"] if i % 2 else ["red"]} for i in range(4)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return SourceConfig(kind="instruction", path=str(path))


def test_unk_share_counts_the_tokens_the_tokenizer_lacks():
    tok = word_tokenizer(PROMPT_WORDS)
    share = unk_share(tok, ["<image>is the circle red yes", "the circle is red"])
    assert (share.unknown, share.tokens) == (1, 9)   # <image> markers are not tokens of the text
    assert share.share == pytest.approx(1 / 9)
    assert share.example == "yes"
    assert unk_share(tok, ["is the circle red?"]).example == "?"


def test_instruction_source_with_yes_answers_is_measured_and_warned(yes_no_source, caplog):
    tok = word_tokenizer(PROMPT_WORDS)
    data = DataConfig(mixture={"instruction": 1.0}, sources=[yes_no_source])
    with caplog.at_level(logging.WARNING, logger="ablate.data.vocabulary"):
        metrics = source_unk_metrics([data], None, tok)
    # a row: 4 question words (or 3), "Answer the question using a single word or phrase ." (10), the answer (1)
    tokens = 2 * (4 + 10 + 1) + 2 * (3 + 10 + 1)
    assert metrics == {"data/instruction/unk_share": pytest.approx(2 / tokens)}
    assert 2 / tokens > WARN_SHARE
    [line] = [r.getMessage() for r in caplog.records]
    assert "instruction data" in line and yes_no_source.path in line and "'yes'" in line
    assert f"{100 * 2 / tokens:.1f}%" in line


def test_a_tokenizer_that_knows_every_word_is_not_warned(yes_no_source, caplog):
    tok = word_tokenizer([*PROMPT_WORDS, "yes"])
    data = DataConfig(mixture={"instruction": 1.0}, sources=[yes_no_source])
    with caplog.at_level(logging.WARNING, logger="ablate.data.vocabulary"):
        assert source_unk_metrics([data], None, tok) == {"data/instruction/unk_share": 0.0}
    assert not caplog.records


def test_a_tokenizer_without_unknown_token_is_not_measured():
    tok = word_tokenizer(PROMPT_WORDS)
    tok.unk_token = None
    assert unk_share(tok, ["yes"]) is None


def test_world_tokenizer_gives_zero_on_every_world_kind_and_on_outside_words(tiny_world, yes_no_source, caplog):
    tok = tiny_world.tokenizer()
    kinds = {"caption": 1.0, "interleaved": 1.0, "text": 1.0, "synthetic": 1.0, "instruction": 1.0}
    with caplog.at_level(logging.WARNING, logger="ablate.data.vocabulary"):
        metrics = source_unk_metrics([DataConfig(world=tiny_world.config, mixture=kinds)], tiny_world, tok)
        outside = source_unk_metrics([DataConfig(mixture={"instruction": 1.0}, sources=[yes_no_source])], None, tok)
    assert metrics == {f"data/{k}/unk_share": 0.0 for k in kinds}
    assert outside == {"data/instruction/unk_share": 0.0}   # "yes" and "Answer" are spelled with byte fallback
    assert not caplog.records
