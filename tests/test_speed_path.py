"""The speed path's switches in `train:` (docs/performance.md) and `train.grad_accum` (docs/training.md).

`auto` is off on the CPU, so a CPU cell trains as it did before the switches existed (and keeps its id); an explicit
`prefetch: true` gives the same losses as no prefetching; a global batch split into micro-batches gives the same
losses as the whole batch in one pass (the loss is normalised over the whole step's labelled tokens)."""
from __future__ import annotations

import json
import math
import os
import socket
import sys

import pytest
import torch
from pydantic import ValidationError
from recording import Losses
from tinyworld import TINY_WORLD  # the world tests/conftest.py's tiny backbones were made with

from ablate.config.schema import CellConfig, TrainConfig
from ablate.resolve import cell_id
from ablate.train.speed import SWITCHES, resolve_switches

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    from ablate.config.schema import WorldConfig
    from ablate.world import build_world

    root = tmp_path_factory.mktemp("speed")
    build_world(WorldConfig(**TINY_WORLD), root)
    return root


def config(tiny_backbones, **train) -> CellConfig:
    # interleaved rows hold several images: micro-batches must split the batch's image list along its rows
    return CellConfig.model_validate({
        "encoder": {"name": tiny_backbones["encoder"], "resolution": 64},
        "llm": {"name": tiny_backbones["llm"]}, "connector": {"tokens": 16},
        "data": {"world": TINY_WORLD, "max_length": 96, "mixture": {"caption": 0.6, "text": 0.2, "interleaved": 0.2}},
        "train": {"steps": 10, "batch_size": 6, "lr": 0.003, "checkpoint_every": 100, "precision": "fp32",
                  "lr_multipliers": {"encoder": 0.0, "connector": 1.0, "llm": 0.5}, **train},
        "eval": {"tasks": ["world_vqa"]}})


def train_cell(cfg: CellConfig, cache) -> tuple[list[float], dict, dict]:
    """What `ablate.cell.run_cell` does to train, speed path included (no store, no evaluation)."""
    from ablate.cell import seed_everything, stage_batches, stage_optimizer
    from ablate.models.build import build_mllm
    from ablate.train.loop import train_stages
    from ablate.train.speed import apply_switches, batch_stream
    from ablate.world import build_world

    torch.set_num_threads(1)
    seed_everything(cfg.train.seed)
    world = build_world(cfg.data.world, cache)
    model = build_mllm(cfg, cache, device="cpu")
    switches = resolve_switches(cfg.train, model.device)
    optim, slots = stage_optimizer(cfg, model, switches["fused_adamw"])
    applied = apply_switches(model, cfg.train, switches)
    hooks = Losses()
    batches_for = batch_stream(stage_batches(cfg, world, model), cfg.train.grad_accum,
                               model if switches["prefetch"] else None)
    train_stages(model, cfg.train, optim, batches_for, hooks, None, slots)
    applied.undo()
    return hooks.losses, switches, applied.done


# ---------------------------------------------------------------------------------------------- the switches

def test_auto_is_on_with_cuda_only_and_explicit_values_win():
    auto = TrainConfig(precision="auto")
    assert resolve_switches(auto, CPU) == dict.fromkeys(SWITCHES, False)
    assert resolve_switches(auto, CUDA) == {**dict.fromkeys(SWITCHES, True), "activation_checkpointing": False}
    forced = TrainConfig(prefetch=True, compile=False, activation_checkpointing=True)
    assert resolve_switches(forced, CPU)["prefetch"] and resolve_switches(forced, CPU)["activation_checkpointing"]
    assert not resolve_switches(forced, CUDA)["compile"]
    # bf16 weights need bf16 autocast: auto steps aside under fp32, an explicit true is refused
    assert not resolve_switches(TrainConfig(precision="fp32"), CUDA)["frozen_bf16"]
    with pytest.raises(ValueError, match="frozen_bf16 needs bf16 autocast"):
        resolve_switches(TrainConfig(frozen_bf16=True), CPU)
    assert resolve_switches(TrainConfig(frozen_bf16=True, precision="bf16"), CPU)["frozen_bf16"]


def test_new_settings_at_their_defaults_keep_the_cell_id():
    base = CellConfig()
    spelled = CellConfig.model_validate({"train": {"grad_accum": 1, "compile": "auto", "frozen_bf16": "auto",
                                                   "prefetch": "auto", "fused_adamw": "auto",
                                                   "activation_checkpointing": False}})
    assert cell_id(spelled) == cell_id(base)
    for changed in ({"grad_accum": 2}, {"prefetch": True}, {"activation_checkpointing": True}):
        assert cell_id(CellConfig.model_validate({"train": changed})) != cell_id(base), changed
    assert json.loads(CellConfig.model_validate({"train": {"grad_accum": 2}}).canonical_json())["train"][
        "grad_accum"] == 2


def test_grad_accum_needs_a_row_per_micro_batch():
    with pytest.raises(ValidationError, match="grad_accum 5 is more than train.batch_size 4"):
        TrainConfig(batch_size=4, grad_accum=5)
    with pytest.raises(ValidationError):
        TrainConfig(grad_accum=0)


def test_micro_batches_split_rows_and_their_images():
    from ablate.data.batch import Batch
    from ablate.train.loop import micro_batches

    n_images = torch.tensor([1, 0, 3, 2, 1])
    images = [f"img{i}" for i in range(int(n_images.sum()))]
    ids = torch.arange(5 * 3).reshape(5, 3)
    batch = Batch(ids, torch.ones_like(ids), ids.clone(), images, n_images)
    parts = list(micro_batches(iter([batch]), 2))
    assert [p.input_ids.shape[0] for p in parts] == [3, 2]
    assert [p.images for p in parts] == [images[:4], images[4:]]
    assert torch.equal(torch.cat([p.input_ids for p in parts]), ids)
    assert list(micro_batches(iter([batch]), 1))[0] is batch
    with pytest.raises(ValueError, match="every micro-batch needs at least one row"):
        list(micro_batches(iter([batch]), 6))


# ---------------------------------------------------------------------------------------------- training parity

def test_prefetch_on_the_cpu_gives_the_same_losses(tiny_backbones, cache):
    plain, switches, _ = train_cell(config(tiny_backbones), cache)
    assert not any(switches.values())   # auto: all off on the CPU
    prefetched, switches, _ = train_cell(config(tiny_backbones, prefetch=True), cache)
    assert switches["prefetch"]
    assert len(plain) == len(prefetched) == 10 and plain[-1] < plain[0]   # it trains
    torch.testing.assert_close(torch.tensor(prefetched), torch.tensor(plain), rtol=1e-5, atol=1e-5)


def test_grad_accum_gives_the_losses_of_the_whole_batch(tiny_backbones, cache):
    whole, _, _ = train_cell(config(tiny_backbones), cache)
    for accum in (2, 3):   # 6 rows: 3 + 3, then 2 + 2 + 2 (micro-batches of unequal token counts)
        split, _, _ = train_cell(config(tiny_backbones, grad_accum=accum), cache)
        assert len(split) == 10
        torch.testing.assert_close(torch.tensor(split), torch.tensor(whole), rtol=1e-5, atol=1e-5)
    assert whole[-1] < whole[0]


def test_grad_accum_with_prefetch_and_activation_checkpointing(tiny_backbones, cache):
    whole, _, _ = train_cell(config(tiny_backbones), cache)
    fast, switches, done = train_cell(config(tiny_backbones, grad_accum=2, prefetch=True,
                                             activation_checkpointing=True), cache)
    assert switches["activation_checkpointing"] and switches["prefetch"] and done["activation_checkpointing"] == "LLM"
    torch.testing.assert_close(torch.tensor(fast), torch.tensor(whole), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- with 2 processes

def _train_rank(rank: int, world: int, port: int, cfg_json: str, cache: str, out: str) -> None:
    """One gloo rank of `train_cell` under DDP, as `ablate.cell.run_cell` trains: its share of each global batch,
    split into micro-batches; rank 0 writes the losses."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    from ablate.cell import seed_everything, stage_batches, stage_optimizer
    from ablate.models.build import build_mllm
    from ablate.train import parallel
    from ablate.train.loop import train_stages
    from ablate.train.speed import batch_stream
    from ablate.world import build_world

    torch.set_num_threads(1)
    parallel.init_from_env(timeout=120)
    cfg = CellConfig.model_validate_json(cfg_json)
    seed_everything(cfg.train.seed)
    world_ = build_world(cfg.data.world, cache)
    model = build_mllm(cfg, cache, device="cpu")
    optim, slots = stage_optimizer(cfg, model)
    hooks = Losses()
    rows = parallel.shard(cfg.train.batch_size)
    train_stages(parallel.parallelize(model), cfg.train, optim,
                 batch_stream(stage_batches(cfg, world_, model, rows=rows), cfg.train.grad_accum), hooks, None, slots)
    if parallel.is_main():
        with open(out, "w") as f:
            json.dump(hooks.losses, f)
    parallel.leave()


@pytest.mark.slow
def test_two_processes_with_grad_accum_train_like_one_process_with_the_whole_batch(tiny_backbones, cache, tmp_path):
    """Global batch 8: 2 gloo ranks of 4 rows, each in 2 micro-batches of 2 (DDP syncs on the last), give the
    1-process, 1-pass losses over 10 steps within float32 rounding (tests/test_parallel.py's tolerance)."""
    import torch.multiprocessing as mp

    if sys.platform != "linux":
        pytest.skip("gloo processes on Linux")
    whole, _, _ = train_cell(config(tiny_backbones, batch_size=8), cache)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "two.json"
    cfg = config(tiny_backbones, batch_size=8, grad_accum=2)
    mp.start_processes(_train_rank, args=(2, port, cfg.model_dump_json(), str(cache), str(out)), nprocs=2,
                       start_method="spawn")
    two = json.loads(out.read_text())
    assert len(two) == len(whole) == 10 and whole[-1] < whole[0]
    torch.testing.assert_close(torch.tensor(two), torch.tensor(whole), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------- a whole cell

@pytest.mark.slow
def test_a_cell_logs_its_effective_switches_and_trains_with_grad_accum(tiny_grid, workspace):
    """`ablate run` of a tiny cell with `prefetch: true` and `grad_accum: 2` on the CPU: the run is FINISHED and
    carries `speed/<name>` parameters (auto -> False here) next to the config's own values."""
    from ablate.resolve import load_grid
    from ablate.runners import load_runner
    from ablate.tracking.store import Store

    grid = load_grid(tiny_grid(axes="train.grad_accum: [2]\n  train.prefetch: [true]", steps=3))
    load_runner(None).run(grid, workspace)
    store = Store(workspace.tracking_uri, workspace.artifacts)
    (run,) = store.runs(store.experiment_id(grid, create=False))
    assert run.status == "FINISHED"
    assert {k: v for k, v in run.params.items() if k.startswith("speed/")} == {
        "speed/compile": "False", "speed/frozen_bf16": "False", "speed/prefetch": "True",
        "speed/fused_adamw": "False", "speed/activation_checkpointing": "False"}
    assert run.params["train.grad_accum"] == "2" and run.params["train.compile"] == "auto"
    assert run.metrics["cost/samples_per_s"] > 0


def test_frozen_bf16_casts_the_parameters_of_modules_no_stage_trains_and_undo_restores_float32(tiny_backbones,
                                                                                               cache):
    from ablate.cell import stage_optimizer
    from ablate.models.build import build_mllm
    from ablate.train.speed import apply_switches

    stages = [{"name": "align", "steps": 2, "lr_multipliers": {"llm": 0.0}}, {"name": "tune", "steps": 2}]
    cfg = config(tiny_backbones, precision="bf16", frozen_bf16=True, stages=stages, steps=4)
    model = build_mllm(cfg, cache, device="cpu")
    buffers = {name: b.dtype for name, b in model.named_buffers()}
    switches = resolve_switches(cfg.train, model.device)
    stage_optimizer(cfg, model, switches["fused_adamw"])
    applied = apply_switches(model, cfg.train, switches)
    # the LLM is frozen in stage 1 only: it stays float32; the encoder never trains: bf16
    assert applied.done["frozen_bf16"] == "encoder"
    assert {p.dtype for p in model.encoder.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.llm.parameters()} == {p.dtype for p in model.connector.parameters()} == {
        torch.float32}
    assert {name: b.dtype for name, b in model.named_buffers()} == buffers
    applied.undo()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    losses, _, done = train_cell(cfg, cache)   # trains under bf16 autocast with the bf16 encoder
    assert done["frozen_bf16"] == "encoder" and len(losses) == 4 and all(map(math.isfinite, losses))
