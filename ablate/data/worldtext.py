"""The embedded world's rows of the plain training kinds, as (text, images): `caption` (a training image and its
alt-text), `synthetic` (the same image and its rich caption), `interleaved` (text with several images) and `text`
(text only). `ablate.data.sources` makes the training rows of them (a caption's text after its `<image>` marker)
and `ablate.data.vocabulary` measures their text; instruction and conversation rows come from their own modules.
Light: no `datasets`."""
from __future__ import annotations

CAPTION_FIELDS = {"caption": "alt", "synthetic": "rich"}   # the world's caption table holds both texts
PLAIN_KINDS = (*CAPTION_FIELDS, "interleaved", "text")


def world_text_rows(kind: str, world, rows: int | None = None) -> list[tuple[str, list[str]]]:
    """The text and the image paths of the world's first `rows` rows (None: all) of a plain kind."""
    if kind in CAPTION_FIELDS:
        return [(r[CAPTION_FIELDS[kind]], [r["image"]]) for r in world.read("caption")[:rows]]
    if kind == "interleaved":
        return [(r["text"], r["images"]) for r in world.read("interleaved")[:rows]]
    if kind == "text":
        return [(r["text"], []) for r in world.read("text")[:rows]]
    raise ValueError(f"{kind!r} is not a plain kind of the world ({', '.join(PLAIN_KINDS)})")
