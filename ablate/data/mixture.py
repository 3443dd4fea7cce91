"""Mix sources by weight with `datasets.interleave_datasets` (MM1, Sec. 3.3: caption / interleaved / text
ratios such as 45:45:10, plus synthetic captions).

Each source is shuffled once with the seed (a streamed source: its shards' order, `endless`), turned into an
endless stream (`IterableDataset.repeat(None)`),
and the library samples which source each row comes from with the normalised weights, so the stream goes on
for any number of steps and is the same for the same seed.
"""
from __future__ import annotations

from collections.abc import Callable

from datasets import Dataset, IterableDataset, interleave_datasets
from datasets.distributed import split_dataset_by_node


def normalised(weights: dict[str, float]) -> dict[str, float]:
    """Weights > 0 scaled to sum to 1 (zero-weight kinds are dropped)."""
    kept = {k: float(v) for k, v in weights.items() if v > 0}
    total = sum(kept.values())
    if total <= 0:
        raise ValueError(f"mixture weights must include one > 0, got {weights}")
    return {k: v / total for k, v in kept.items()}


def endless(source: Dataset | IterableDataset, seed: int, node: int = 0, nodes: int = 1,
            check: Callable[[dict], bool] | None = None) -> IterableDataset:
    """A source as an endless seeded stream: an in-memory table shuffled whole, a streamed one in its shards' order
    shuffled (rows within a shard in file order: write shards shuffled). No shuffle buffer: the stream's position
    is then its whole state (`IterableDataset.state_dict`), so a resumed stream goes on exactly. `node` of `nodes`:
    only that part of the source (`datasets.distributed.split_dataset_by_node`: whole shards when the shards divide
    among the nodes, else every `nodes`-th row; an in-memory table: a contiguous part of its shuffled rows).
    `check`: an in-memory table's rows kept when met (`ablate.data.validate.Skips.usable`), after the shuffle, so
    the rows a check keeps are drawn in the same order as without one."""
    if isinstance(source, IterableDataset):
        part = source if nodes == 1 else split_dataset_by_node(source, rank=node, world_size=nodes)
        return part.shuffle(seed=seed, buffer_size=1).repeat(None)
    shuffled = source.shuffle(seed=seed)
    if nodes == 1:
        stream = shuffled.to_iterable_dataset()
    else:
        parts = shuffled.to_iterable_dataset(num_shards=min(nodes, len(shuffled)))
        stream = split_dataset_by_node(parts, rank=node, world_size=nodes)
    return (stream if check is None else stream.filter(check)).repeat(None)


def mix(sources: dict[str, Dataset | IterableDataset], weights: dict[str, float], seed: int, node: int = 0,
        nodes: int = 1, checks: dict[str, Callable[[dict], bool]] | None = None) -> IterableDataset:
    """An endless stream of `{"text", "images"}` rows drawn from `sources` in proportion to `weights` (`node` of
    `nodes`: from that part of each source, `endless`, with its own draw of which source each row comes from;
    `checks`: kind -> the filter of that kind's in-memory rows, `endless`)."""
    probs = normalised(weights)
    missing = [k for k in probs if k not in sources]
    if missing:
        raise ValueError(f"mixture names {missing} but only {sorted(sources)} were loaded")
    kinds = sorted(probs)
    streams = [endless(sources[k], seed, node, nodes, (checks or {}).get(k)) for k in kinds]
    if len(streams) == 1:
        return streams[0]
    return interleave_datasets(streams, probabilities=[probs[k] for k in kinds],
                               seed=seed if nodes == 1 else (seed + 7919 * node) % 2**32,
                               stopping_strategy="all_exhausted")
