"""What the LLM's tokenizer cannot spell: the share of unknown tokens in a text sample, and one word it lacks.

A tokenizer with an unknown token (a word-level vocabulary, many older `hf:` models) turns every word it does not
know into that token: trained on as `<unk>`, generated as `<unk>`, decoded to nothing, scored 0 whatever the model
saw. `unk_share` measures it on a bounded sample (the first `SAMPLE_ROWS` rows: well under a second); `unk_metrics`
makes the metrics a cell logs and warns, one line per source or task, above `WARN_SHARE`. A tokenizer without an
unknown token (some byte-level BPEs) is not measured; the zoo's byte-fallback BPE has one but never produces it
(its share is 0).

Training sources are measured per data kind (`data/<kind>/unk_share`, over the rows' text and, for instruction
rows, the answer); evaluation tasks per task (`eval/<task>/unk_share`, over the prompts and reference answers,
`ablate.evaluation.vocabulary`).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ablate.data.worldtext import world_text_rows

IMAGE_MARKER = "<image>"
SAMPLE_ROWS = 300
WARN_SHARE = 0.02
WORD = re.compile(r"\w+|[^\w\s]+")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnkShare:
    """Unknown tokens among the tokens of a sample; `example`: a word of the sample the tokenizer lacks."""

    share: float
    tokens: int
    unknown: int
    example: str | None = None


def unk_share(tokenizer, texts: Iterable[str]) -> UnkShare | None:
    """The share of `tokenizer.unk_token_id` among the tokens of `texts` (`<image>` markers left out, no special
    tokens added); None when the tokenizer has no unknown token."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return None
    texts = [t.replace(IMAGE_MARKER, " ") for t in texts if t]
    rows = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    tokens = sum(len(r) for r in rows)
    unknown = sum(r.count(unk) for r in rows)
    example = unknown_word(tokenizer, unk, [t for t, r in zip(texts, rows) if unk in r]) if unknown else None
    return UnkShare(unknown / tokens if tokens else 0.0, tokens, unknown, example)


def unknown_word(tokenizer, unk: int, texts: list[str]) -> str | None:
    """The first word (or run of punctuation) of `texts` that the tokenizer spells with `unk`."""
    for text in texts:
        for word in dict.fromkeys(WORD.findall(text)):
            if unk in tokenizer(word, add_special_tokens=False)["input_ids"]:
                return word
    return None


def unk_metrics(shares: dict[str, UnkShare | None], kind: str, what: dict[str, str] | None = None
                ) -> dict[str, float]:
    """`<kind>/<name>/unk_share` per measured name (`kind`: `data` or `eval`), and one warning line for each above
    `WARN_SHARE`; `what`: how a warning names each (default: `<kind> <name>`)."""
    out = {}
    for name, share in shares.items():
        if share is None:
            continue
        out[f"{kind}/{name}/unk_share"] = share.share
        if share.share > WARN_SHARE:
            log.warning("%s: %.1f%% of the tokens are unknown to the LLM's tokenizer (e.g. %r): they train and "
                        "generate as the unknown token and decode to nothing (docs/data.md, \"Words the LLM cannot "
                        "spell\")", (what or {}).get(name, f"{kind} {name}"), 100 * share.share, share.example)
    return out


def source_unk_metrics(data_cfgs, world, tokenizer, cache_dir=None) -> dict[str, float]:
    """`data/<kind>/unk_share` for every kind the cell trains on, warning for each above the threshold."""
    shares, names = source_shares(data_cfgs, world, tokenizer, cache_dir)
    return unk_metrics(shares, "data", names)


def source_shares(data_cfgs, world, tokenizer, cache_dir=None, rows: int = SAMPLE_ROWS
                  ) -> tuple[dict[str, UnkShare | None], dict[str, str]]:
    """Per data kind the cell trains on (`data_cfgs`: its stages' data configs): the unknown-token share over the
    first `rows` rows of each of its sources (each local file, or the embedded world's), and how a warning names
    the kind (with its files)."""
    from ablate.data.mixture import normalised

    texts: dict[str, list[str]] = {}
    files: dict[str, list[str]] = {}
    for data_cfg in data_cfgs:
        for kind in normalised(data_cfg.mixture):
            real = [s for s in data_cfg.sources if s.kind == kind]
            if data_cfg.sources and not real:
                continue   # refused when the cell's data is built (`mixture_sources`); nothing to measure
            for source in real or [None]:
                where = source.path if source is not None else "the embedded world"
                if where in files.setdefault(kind, []):
                    continue
                files[kind].append(where)
                texts.setdefault(kind, []).extend(
                    source_texts(source, cache_dir, rows) if source is not None else world_texts(kind, world, rows))
    names = {kind: f"{kind} data ({', '.join(files[kind])})" for kind in texts}
    return {kind: unk_share(tokenizer, sample) for kind, sample in texts.items()}, names


def world_texts(kind: str, world, rows: int = SAMPLE_ROWS) -> list[str]:
    """The text of the world's first `rows` rows of `kind`, as `ablate.data.sources` makes them (instruction: the
    questions of its first `rows / 5` train images, about 5 each)."""
    if kind in ("instruction", "conversation"):   # the world's conversations are its instruction rows in turn
        from ablate.data.instruction import world_rows  # lazy: datasets

        return [f"{r['text']} {r['answer']}" for r in world_rows(world, images=max(1, rows // 5))][:rows]
    return [text for text, _ in world_text_rows(kind, world, rows)]


def source_texts(source, cache_dir=None, rows: int = SAMPLE_ROWS) -> list[str]:
    """The text of a real source's first `rows` rows (the prompt and the answer trained on, for instruction
    rows), read without opening their images."""
    if source.kind == "instruction":
        from pathlib import Path

        from ablate.data.instruction import record_rows  # lazy: datasets
        from ablate.data.vqa import first_records

        records = first_records(Path(source.path).expanduser(), rows)
        return [f"{r['text']} {r['answer']}" for r in record_rows(source, records, lambda value: "")]
    from ablate.data.sources import raw_texts  # lazy: datasets

    return raw_texts(source, cache_dir, rows)
