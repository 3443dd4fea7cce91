"""An image's block of tokens: one crop, or LLaVA-UHD slices with separators; training and generation agree."""
import pytest
from PIL import Image

from ablate.config.schema import EncoderConfig
from ablate.models.visual_tokens import ImageTokens


class WordTokenizer:
    unk_token_id = 0
    vocab = {",": 5, "\n": 6, ".": 7}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.vocab.get(text, 0)]}


def test_resize_is_one_crop():
    tokens = ImageTokens(EncoderConfig(resolution=32), tokens=4, image_token_id=9)
    assert tokens.block(Image.new("RGB", (300, 100))) == [9] * 4


def test_slices_follow_the_llava_uhd_partition_with_separators():
    cfg = EncoderConfig(resolution=32, image_handling="slice", max_slices=6)
    tokens = ImageTokens(cfg, tokens=4, image_token_id=9, tokenizer=WordTokenizer())
    wide = Image.new("RGB", (96, 32))        # N = ceil(96*32 / 32^2) = 3 -> 1 row x 3 cols
    assert tokens.layout(wide) == (1, 3)
    block = tokens.block(wide)
    crop = [9] * 4
    assert block == crop + (crop + [5]) * 3 + [6]
    square = Image.new("RGB", (64, 64))      # N = 4 -> 2 x 2
    assert tokens.layout(square) == (2, 2) and tokens.crops(square) == 5
    assert block.count(9) == 16 and tokens.block(square).count(9) == 20
    small = Image.new("RGB", (20, 20))       # N = 1: overview only
    assert tokens.block(small) == crop


def test_separators_of_a_sentencepiece_style_tokenizer_are_its_bare_punctuation_tokens():
    """The world tokenizer (BPE, "▁" for spaces) encodes "," alone as "▁" + ",": the separator is "," itself."""
    from ablate.world.tokenizer import build_tokenizer

    tok = build_tokenizer(["the word is lamp, the circle is red. a square; a cross"])
    cfg = EncoderConfig(resolution=32, image_handling="slice", max_slices=6)
    tokens = ImageTokens(cfg, tokens=4, image_token_id=tok.convert_tokens_to_ids("<image>"), tokenizer=tok)
    assert tok.decode([tokens.slice_sep]) == "," and tokens.row_sep != tokens.slice_sep
    assert tok.decode([tokens.row_sep]) in ("\n", ".", ";")


@pytest.mark.slow
def test_slicing_cells_train_and_log_their_token_count(tiny_grid, workspace):
    from ablate.cli import main
    from ablate.resolve import load_grid
    from ablate.tracking.results import results_frame
    from ablate.tracking.store import Store

    grid_path = tiny_grid(axes="encoder.image_handling: [resize, slice]", steps=4,
                          extra="")
    text = grid_path.read_text().replace("resolution: 64}", "resolution: 32, max_slices: 4}")
    grid_path.write_text(text)
    assert main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run", str(grid_path),
                 "--no-report"]) == 0
    frame, _ = results_frame(Store(workspace.tracking_uri, workspace.artifacts), load_grid(grid_path))
    assert list(frame["status"]) == ["FINISHED", "FINISHED"]
    resize, sliced = frame["visual_tokens_per_image"]
    assert resize == 16                          # 16 tokens, one crop
    assert sliced == 16 * 5 + 2 * 2 + 2          # 64x64 world images at 32 px: overview + 2x2 slices + separators
    assert frame["score/world_vqa/0shot"].notna().all()
