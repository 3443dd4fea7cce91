"""`data.nodes`: the stream in parts split by shards (`split_dataset_by_node`); a process reads only its parts and
the batches do not depend on how many processes read them."""
from __future__ import annotations

import json
from itertools import islice

import pytest
import torch
from shards import write_shards

from ablate.config.schema import DataConfig, SourceConfig
from ablate.data import train_batches


def _last_words(tok, batch) -> list[str]:
    return [tok.decode(r[m.bool()]).split()[-1].removesuffix(tok.eos_token) for r, m in
            zip(batch.input_ids, batch.attention_mask)]


def test_each_process_reads_only_its_shards_and_together_they_make_the_one_process_batches(tmp_path, tiny_world):
    write_shards(tmp_path / "shards", shards=4, rows=6)
    tok = tiny_world.tokenizer()
    cfg = DataConfig(mixture={"caption": 1.0}, nodes=2, max_length=64, sources=[
        SourceConfig(kind="caption", path=str(tmp_path / "shards"), format="webdataset")])

    def run(rows=None, **kwargs):
        return list(islice(train_batches(cfg, None, tok, 4, 4, 0, cache_dir=tmp_path / "c", rows=rows, **kwargs), 9))

    one, first, second = run(), run(slice(0, 2)), run(slice(2, 4))
    for a, b, whole in zip(first, second, one, strict=True):
        assert _last_words(tok, a) + _last_words(tok, b) == _last_words(tok, whole)
    shards = [{w[:2] for batch in part for w in _last_words(tok, batch)} for part in (first, second)]
    assert len(shards[0]) == len(shards[1]) == 2 and not shards[0] & shards[1]   # 2 shards each, none shared
    read = [sum(len(_last_words(tok, b)) for b in part) for part in (first, second)]
    assert read == [18, 18]                       # 9 batches of 2 rows each: the other's rows never read
    state = json.loads(json.dumps(one[4].data_state))
    for a, b in zip(run(data_state=state)[:4], one[5:9]):
        assert torch.equal(a.input_ids, b.input_ids)
    resumed_half = run(slice(2, 4), data_state=state)[:4]   # a 1-process checkpoint resumes on 2 processes
    assert [_last_words(tok, b) for b in resumed_half] == [_last_words(tok, b)[2:] for b in one[5:9]]


def test_parts_that_do_not_divide_the_batch_or_the_processes_are_refused(tmp_path, tiny_world):
    tok = tiny_world.tokenizer()
    with pytest.raises(ValueError, match="data.nodes 3 does not divide train.batch_size 4"):
        next(train_batches(DataConfig(mixture={"caption": 1.0}, nodes=3), tiny_world, tok, 4, 4, 0))
    with pytest.raises(ValueError, match="not whole parts"):
        next(train_batches(DataConfig(mixture={"caption": 1.0}, nodes=2), tiny_world, tok, 4, 4, 0,
                           rows=slice(0, 1)))


@pytest.mark.slow
def test_two_processes_on_their_own_shards_train_like_one_process(tiny_grid, tmp_path):
    """12 steps at global batch 4 on streamed shards with `data.nodes: 2`: 2 gloo ranks, each reading its 2 of the
    4 shards, give the 1-process losses within the data-parallel tolerance (tests/test_parallel.py)."""
    import sys

    if sys.platform != "linux":
        pytest.skip("gloo processes on Linux")
    from test_parallel import close, run_ranks

    write_shards(tmp_path / "shards", shards=4, rows=10)
    grid = tiny_grid(axes="connector.name: [mlp]", steps=12)
    source = (f'sources: [{{kind: caption, path: "{tmp_path / "shards"}", format: webdataset}}], '
              "mixture: {caption: 1.0}, nodes: 2, ")
    grid.write_text(grid.read_text().replace("data: {", "data: {" + source))
    one = run_ranks(1, grid, tmp_path / "one", tmp_path / "one.json")
    two = run_ranks(2, grid, tmp_path / "two", tmp_path / "two.json")
    assert one["ranks"] == 1 and two["ranks"] == 2 and len(one["losses"]) == 12
    assert close(two["losses"], one["losses"]), (two["losses"], one["losses"])
