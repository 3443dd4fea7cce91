"""The closed vocabulary of the embedded world: shapes, colours, positions, words, phrases.

Everything a scene can hold and every word a sentence can use is listed here; the world tokenizer
(`ablate.world.tokenizer`) makes each of these words one token (and spells any other text by bytes).
"""
from __future__ import annotations

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "diamond")
PLURALS: dict[str, str] = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "cross": "crosses",
    "diamond": "diamonds",
}

# Saturated colours, all far from the light backgrounds and from each other.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (235, 200, 0),
    "purple": (130, 40, 170),
    "orange": (245, 130, 0),
    "pink": (245, 110, 180),
    "brown": (120, 70, 30),
}

SIZES: tuple[str, ...] = ("big", "small")
SIZE_FRACTION: dict[str, float] = {"big": 0.78, "small": 0.42}  # of a layout cell's side

# 3x3 layout, row-major; the name is what sentences say ("the circle is at the top left").
POSITIONS: tuple[str, ...] = (
    "top left", "top middle", "top right",
    "middle left", "center", "middle right",
    "bottom left", "bottom middle", "bottom right",
)

# Short common words rendered into images (what TextVQA-style questions ask to read).
WORDS: tuple[str, ...] = (
    "lamp", "tree", "bird", "fish", "cat", "dog", "sun", "moon", "star", "book",
    "door", "ship", "cake", "milk", "rain", "snow", "ball", "boat", "frog", "kite",
    "lion", "rose", "salt", "sock", "tea", "wolf", "bell", "corn", "duck", "gold",
    "hat", "key", "leaf", "map", "nest", "pear", "ring", "road", "seed", "wind",
    "king", "bear", "fox", "egg", "owl", "cup", "box", "pen",
)

# The order in which a smaller vocabulary (`WorldConfig.n_words` < 48) takes the words: visually distinct ones first.
# The full vocabulary keeps the order of WORDS, so the default world does not depend on this list.
_MOST_DISTINCT = ("cat", "sun", "key", "owl", "fish", "lamp", "tree", "bird", "moon", "ship", "frog", "cake")
SUBSET_ORDER: tuple[str, ...] = _MOST_DISTINCT + tuple(w for w in WORDS if w not in _MOST_DISTINCT)


def words(n: int) -> tuple[str, ...]:
    """The `n` words a world draws from."""
    return WORDS if n >= len(WORDS) else SUBSET_ORDER[:n]


# Font size of a rendered word as a fraction of the image side (see `ablate.world.render`).
WORD_SIZE_FRACTION: dict[str, float] = {"large": 1 / 5, "small": 1 / 12}

NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four"}
ORDINALS: tuple[str, ...] = ("first", "second", "third", "fourth")

# Terse, uninformative alt-text, as web alt-text often is.
VAGUE_PHRASES: tuple[str, ...] = (
    "a picture", "some shapes", "an image", "a drawing", "shapes and a word",
    "colourful shapes", "a simple picture", "a picture with a word",
)

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (250, 250, 250),
    "grey": (225, 225, 225),
    "beige": (240, 232, 210),
    "sky": (220, 235, 248),
}
