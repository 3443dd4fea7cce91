"""Image handling: resize, pad, LLaVA-UHD slicing checked against the paper's formula."""
import math

import pytest
from PIL import Image

from ablate.images import choose_partition, handle, pad, resize, slice_count, slice_image


def brute_force(w, h, vw, vh, max_slices):
    """The formula, written out: best score over m*n in {N-1, N, N+1}, 1 < m*n <= max_slices."""
    n = min(max_slices, math.ceil(w * h / (vw * vh)))
    if n <= 1:
        return None
    best = -float("inf")
    for count in (n - 1, n, n + 1):
        if 1 < count <= max_slices:
            for m in range(1, count + 1):
                if count % m == 0:
                    best = max(best, -abs(math.log(w * (count // m) / (h * m)) - math.log(vw / vh)))
    return best


@pytest.mark.parametrize("w,h,max_slices,expected", [
    (96, 288, 4, (3, 1)),       # 1:3 portrait -> three rows of square slices
    (288, 96, 4, (1, 3)),       # 3:1 landscape -> three columns
    (192, 192, 4, (2, 2)),      # square, 4x the area -> 2 x 2
    (20, 30, 4, (0, 0)),        # tiny: N = 1, no slicing, overview only
    (96, 96, 4, (0, 0)),        # exactly the encoder's size
    (1600, 900, 4, (1, 3)),     # 16:9, N capped at 4: 1 x 3 (slices 533x900) beats 2 x 2 (800x450)
    (1600, 900, 9, (2, 4)),     # 16:9, N = 9 capped; 2 rows x 4 cols (ratio 0.89) is the best of 8, 9
])
def test_partition_matches_formula(w, h, max_slices, expected):
    rows, cols = choose_partition(w, h, 96, 96, max_slices)
    assert (rows, cols) == expected
    best = brute_force(w, h, 96, 96, max_slices)
    if best is None:
        assert (rows, cols) == (0, 0)
    else:
        assert -abs(math.log(w * rows / (h * cols))) == pytest.approx(best)
        assert rows * cols <= max_slices


def test_slice_count():
    assert slice_count(1600, 900, 96, 96, 200) == math.ceil(1600 * 900 / 96 ** 2) == 157
    assert slice_count(1600, 900, 96, 96, 6) == 6


def test_slices_cover_the_image_in_row_major_order():
    img = Image.new("RGB", (90, 270))
    for r, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        img.paste(colour, (0, r * 90, 90, (r + 1) * 90))
    sliced = slice_image(img, 32, 4)
    assert (sliced.rows, sliced.cols) == (3, 1)
    assert len(sliced.crops) == 4 and all(c.size == (32, 32) for c in sliced.crops)
    assert [s.getpixel((16, 16)) for s in sliced.slices] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_resize_and_pad():
    img = Image.new("RGB", (30, 90), (200, 10, 10))
    assert resize(img, 48).size == (48, 48)
    padded = pad(img, 48)
    assert padded.size == (48, 48)
    assert padded.getpixel((2, 24)) == (0, 0, 0)        # left margin is padding
    assert padded.getpixel((24, 24)) == (200, 10, 10)   # the image sits in the middle, aspect kept
    assert padded.getpixel((24, 1)) == (200, 10, 10)    # full height used
    crops, layout = handle(img, 48, "pad")
    assert len(crops) == 1 and layout == (0, 0)
    with pytest.raises(ValueError, match="resize, pad, slice"):
        handle(img, 48, "crop")
