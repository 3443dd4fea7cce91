"""Collator: image blocks where the markers are, labels masked, right padding, whole-image truncation."""
import pytest

from ablate.data import Collator
from ablate.world.tokenizer import word_id

IMG = 4  # <image> id of the world tokenizer (specials come first: pad bos eos unk image)


def _ids(tok, words):
    return [word_id(tok, w) for w in words.split()]  # each word after a space: one token


def test_caption_row_layout_and_labels(tok):
    batch = Collator(tok, visual_tokens_per_image=3, max_length=32)([{"text": "<image> the word is lamp",
                                                                        "images": ["a.png"]}])
    the_word_is_lamp = _ids(tok, "the word is lamp")
    assert batch.input_ids[0].tolist() == [1, IMG, IMG, IMG, *the_word_is_lamp, 2]
    assert batch.labels[0].tolist() == [-100, -100, -100, -100, *the_word_is_lamp, 2]
    assert batch.images == ["a.png"] and batch.n_images.tolist() == [1]
    assert batch.padding_fraction == 0.0


def test_interleaved_images_sit_after_their_text_in_order_and_padding_is_right(tok):
    rows = [{"text": "a <image> b c <image> d", "images": ["x.png", "y.png"]},
            {"text": "the word", "images": []},
            {"text": "<image> e", "images": ["z.png"]}]
    batch = Collator(tok, visual_tokens_per_image=2, max_length=64)(rows)
    a, b, c, d, e = _ids(tok, "a b c d e")
    assert batch.input_ids[0].tolist() == [1, a, IMG, IMG, b, c, IMG, IMG, d, 2]
    assert batch.input_ids[1].tolist() == [1, *_ids(tok, "the word"), 2] + [0] * 6
    assert batch.attention_mask[1].tolist() == [1] * 4 + [0] * 6
    assert batch.labels[1].tolist()[4:] == [-100] * 6
    assert batch.input_ids[2].tolist()[:5] == [1, IMG, IMG, e, 2]
    assert batch.images == ["x.png", "y.png", "z.png"] and batch.n_images.tolist() == [2, 0, 1]
    assert batch.padding_fraction == pytest.approx((6 + 5) / 30)
    # every label of an image position is masked, every other real token is learned (except <bos>)
    real = batch.attention_mask.bool()
    image = batch.input_ids == IMG
    assert (batch.labels[image] == -100).all()
    assert (batch.labels[real & ~image][1:] != -100).sum() == (real & ~image).sum() - 3  # three <bos>


@pytest.mark.parametrize("max_length", [6, 7, 8, 9])
def test_truncation_drops_a_partial_image_block_whole(tok, max_length):
    # <bos> a [img x3] b [img x3] c <eos> = 11 tokens; the second block fits only with max_length >= 9
    batch = Collator(tok, visual_tokens_per_image=3, max_length=max_length)(
        [{"text": "a <image> b <image> c", "images": ["x.png", "y.png"]}])
    ids = batch.input_ids[0].tolist()
    assert len(ids) <= max_length
    n_image_tokens = ids.count(IMG)
    assert n_image_tokens % 3 == 0
    assert batch.n_images.tolist() == [n_image_tokens // 3]
    assert batch.images == ["x.png", "y.png"][: n_image_tokens // 3]
    assert n_image_tokens == (6 if max_length >= 9 else 3)


def test_marker_count_must_match_images_and_tokenizer_needs_image_token(tok):
    with pytest.raises(ValueError, match="2 <image> markers but 1 images"):
        Collator(tok, 2, 16)([{"text": "<image> a <image>", "images": ["x.png"]}])
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    plain = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, "<unk>")),
                                    unk_token="<unk>")
    with pytest.raises(ValueError, match="no <image> token"):
        Collator(plain, 2, 16)
