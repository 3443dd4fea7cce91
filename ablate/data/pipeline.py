"""`train_batches`: config + world + tokenizer -> an endless, seeded, resumable stream of `Batch`es."""
from __future__ import annotations

from collections.abc import Iterator
from itertools import count, islice

from datasets import IterableDataset, concatenate_datasets

from ablate.config.schema import DataConfig
from ablate.data.batch import Batch
from ablate.data.collate import Collator
from ablate.data.conversation import with_turns_column
from ablate.data.instruction import with_answer_column
from ablate.data.mixture import mix, normalised
from ablate.data.sources import load_source
from ablate.data.validate import Skips


class Sources(dict):
    """`kind -> table` (what `mix` draws from), and `checks`: `kind -> filter` for the kinds read into memory from
    real files, whose rows are checked when the stream meets them (`validate.Skips`: nothing decoded up front).
    Streamed sources carry their own check; the embedded world's rows need none."""

    def __init__(self, tables: dict, checks: dict | None = None):
        super().__init__(tables)
        self.checks = checks or {}


def mixture_sources(data_cfg: DataConfig, world=None, cache_dir=None) -> Sources:
    """One table per kind with weight > 0: the configured real sources of that kind, or, with no real sources
    at all, the world's."""
    out, checks = {}, {}
    for kind in normalised(data_cfg.mixture):
        real = [s for s in data_cfg.sources if s.kind == kind]
        if real:
            parts = [load_source(kind, source=s, cache_dir=cache_dir) for s in real]
            if len(parts) > 1 and any(isinstance(p, IterableDataset) for p in parts):   # streamed and in-memory
                parts = [p if isinstance(p, IterableDataset) else
                         p.to_iterable_dataset().filter(Skips(s.path, len(p)).usable) for p, s in zip(parts, real)]
            out[kind] = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
            if not isinstance(out[kind], IterableDataset):
                checks[kind] = Skips(", ".join(s.path for s in real), len(out[kind])).usable
        elif world is None or data_cfg.sources:
            raise ValueError(f"mixture kind {kind!r} has no source in data.sources"
                             + (" (with sources, the embedded world's data is not used)" if world else
                                " and no world was given"))
        else:
            out[kind] = load_source(kind, world=world)
    return Sources(one_schema(out), checks)


def one_schema(tables: dict) -> dict:
    """The tables with the same columns in the same order (`datasets.interleave_datasets` needs one schema): kinds
    without an instruction row's `answer` get an empty one, kinds without a conversation's `turns` get none."""
    if any("answer" in t.column_names for t in tables.values()):
        tables = {kind: with_answer_column(table) for kind, table in tables.items()}
    if any("turns" in t.column_names for t in tables.values()):
        tables = {kind: with_turns_column(table) for kind, table in tables.items()}
    columns = [c for c in ("text", "images", "answer", "turns") if c in next(iter(tables.values())).column_names]
    return {kind: table.select_columns(columns) for kind, table in tables.items()}


def train_batches(data_cfg: DataConfig, world, tokenizer, visual_tokens_per_image, batch_size: int,
                  seed: int, start_step: int = 0, cache_dir=None, rows: slice | None = None,
                  data_state: dict | None = None, keep=None, sources: dict | None = None) -> Iterator[Batch | None]:
    """Batches for steps `start_step, start_step + 1, ...`; the same seed gives the same batches, so a resumed
    run (start_step = the checkpoint's step) sees exactly what an uninterrupted run would have seen.

    `rows`: the share of each global batch of `batch_size` rows this process takes when several train the cell
    (`ablate.train.parallel.shard`): every process reads the same seeded stream and collates only its rows, so
    together they see exactly the samples one process would.

    Each batch carries `data_state`, the stream's `IterableDataset.state_dict()` after its rows; given one
    (`data_state`, from a checkpoint), the stream continues from there without reading the rows before it, so
    resuming costs the same at any step (without one, `start_step`'s rows are skipped: read and dropped).

    `data.nodes` > 1: the stream is that many parts (`ablate.data.mixture.endless`), each batch `batch_size /
    nodes` rows of each part in order; a process whose `rows` cover whole parts reads only those parts (one read
    per row across processes), and `data_state` is `{"nodes": {part: state}}`.

    `keep(i)` (for loader workers, `ablate.data.workers`): whether batch i is made; the others are read but not
    tokenised or collated, and come out as None. `sources`: `mixture_sources(data_cfg, world, cache_dir)`, made
    once by the caller (a loader's workers then open no dataset: they iterate the one made before they started)."""
    nodes = data_cfg.nodes
    if nodes == 1:
        yield from _one_stream(data_cfg, world, tokenizer, visual_tokens_per_image, batch_size, seed, start_step,
                               cache_dir, rows, data_state, keep, sources)
        return
    per, mine = node_share(batch_size, nodes, rows)
    sources = sources or mixture_sources(data_cfg, world, cache_dir)
    streams = {k: mix(sources, data_cfg.mixture, seed, k, nodes, _checks(sources)) for k in mine}
    for k, stream in streams.items():
        if data_state is not None:
            stream.load_state_dict(data_state["nodes"][str(k)])
        elif start_step:
            streams[k] = stream.skip(start_step * per)
    collate = Collator(tokenizer, visual_tokens_per_image, data_cfg.max_length, data_cfg.packing)
    samples = {k: iter(stream) for k, stream in streams.items()}
    for i in count():
        chunk = [row for k in mine for row in islice(samples[k], per)]
        if len(chunk) < per * len(mine):
            return
        if keep is not None and not keep(i):
            yield None
            continue
        batch = collate(chunk)
        batch.data_state = {"nodes": {str(k): stream.state_dict() for k, stream in streams.items()}}
        yield batch


def node_share(batch_size: int, nodes: int, rows: slice | None) -> tuple[int, range]:
    """Rows per part in a batch, and the parts whose rows are `rows` of the batch (all of them for None)."""
    if batch_size % nodes:
        raise ValueError(f"data.nodes {nodes} does not divide train.batch_size {batch_size}: each batch takes the "
                         "same number of rows from every part")
    per = batch_size // nodes
    if rows is None:
        return per, range(nodes)
    if rows.start % per or rows.stop % per:
        raise ValueError(f"data.nodes {nodes}: this process's rows {rows.start}-{rows.stop - 1} of each batch of "
                         f"{batch_size} are not whole parts of {per} rows: run a number of processes that divides "
                         "data.nodes")
    return per, range(rows.start // per, rows.stop // per)


def _one_stream(data_cfg, world, tokenizer, visual_tokens_per_image, batch_size, seed, start_step, cache_dir, rows,
                data_state, keep=None, sources=None) -> Iterator[Batch | None]:
    sources = sources or mixture_sources(data_cfg, world, cache_dir)
    stream = mix(sources, data_cfg.mixture, seed, checks=_checks(sources))
    if data_state is not None:
        stream.load_state_dict(data_state)
    elif start_step:
        stream = stream.skip(start_step * batch_size)
    collate = Collator(tokenizer, visual_tokens_per_image, data_cfg.max_length, data_cfg.packing)
    samples = iter(stream)
    for i in count():
        chunk = list(islice(samples, batch_size))
        if not chunk:
            return
        if keep is not None and not keep(i):
            yield None
            continue
        batch = collate(chunk if rows is None else chunk[rows])
        batch.data_state = stream.state_dict()
        yield batch


def _checks(sources: dict) -> dict:
    return getattr(sources, "checks", {})
