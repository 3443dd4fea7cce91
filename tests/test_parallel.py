"""Data-parallel training of one cell (ablate.train.parallel) on the CPU: 2 gloo processes against 1 process.

The tolerance: the ranks pad their halves of a batch to their own widths and the gradients are summed in another
order, so losses agree to float32 rounding, not bit for bit: 20 steps within 1e-4 relative (measured: ~1e-6).
"""
from __future__ import annotations

import json
import os
import socket
import sys

import pytest

from ablate.train.parallel import shard

TOLERANCE = 1e-4


def test_shards_are_disjoint_contiguous_and_cover_the_batch():
    for size, count in [(4, 2), (5, 2), (7, 3), (16, 8), (3, 3)]:
        parts = [shard(size, i, count) for i in range(count)]
        rows = [r for p in parts for r in range(size)[p]]
        assert rows == list(range(size))
        assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1
    with pytest.raises(ValueError, match="batch_size 1 is smaller than the 2 processes"):
        shard(1, 0, 2)


def test_one_process_trains_the_model_itself_with_either_strategy():
    import torch

    from ablate.train.parallel import parallelize

    model = torch.nn.Linear(2, 2)
    assert parallelize(model) is model and parallelize(model, "fsdp") is model
    with pytest.raises(ValueError, match="use 'ddp' or 'fsdp'"):
        parallelize(model, "zero3")


def test_ddp_looks_for_unused_parameters_only_when_the_data_has_text_rows():
    from ablate.config.schema import DataConfig, SourceConfig
    from ablate.train.parallel import needs_unused_parameters

    assert not needs_unused_parameters([DataConfig(mixture={"caption": 1.0})])
    assert not needs_unused_parameters([DataConfig(mixture={"caption": 1.0, "text": 0.0})])
    assert needs_unused_parameters([DataConfig(mixture={"caption": 1.0}), DataConfig(mixture={"text": 0.2,
                                                                                              "caption": 0.8})])
    assert needs_unused_parameters([DataConfig(sources=[SourceConfig(kind="text", path="x.jsonl")])])
    # a conversation record may hold no <image> (LLaVA-665K mixes text-only ones in)
    assert needs_unused_parameters([DataConfig(mixture={"conversation": 1.0})])


def test_a_batch_without_labelled_rows_has_zero_loss_and_gradients():
    import torch

    from ablate.models.loss import linear_cross_entropy

    hidden = torch.randn(0, 8, requires_grad=True)
    weight = torch.randn(5, 8, requires_grad=True)
    loss = linear_cross_entropy(hidden, weight, torch.zeros(0, dtype=torch.long), backend="chunked")
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.count_nonzero(weight.grad) == 0


def test_train_cost_counts_samples_text_and_visual_tokens_and_times_steps():
    import torch

    from ablate.cell import TrainCost
    from ablate.data.batch import Batch

    ids = torch.tensor([[1, 9, 9, 5, 0], [1, 9, 9, 6, 7]])   # 9: <image>, 0: padding
    batch = Batch(ids, (ids != 0).long(), ids, ["a", "b"], torch.tensor([1, 1]))
    cost = TrainCost(image_token_id=9)

    class Hooks:
        def on_step(self, step, loss, lr):
            pass

    hooks = cost.timed(Hooks())
    batches = cost.counted(lambda stage, done: iter([batch, batch]))(None, 0)
    for step, _ in enumerate(batches, 1):
        hooks.on_step(step, 1.0, 0.1)
    metrics = cost.metrics(2.0, torch.device("cpu"))
    assert metrics["cost/samples_per_s"] == 2.0                     # 4 samples in 2 s
    assert metrics["cost/visual_tokens_per_s"] == 4.0               # 8 <image> tokens
    assert metrics["cost/text_tokens_per_s"] == 5.0                 # 10 real tokens, less the visual ones
    assert metrics["cost/processes"] == 1.0 and len(cost.step_s) == 1 and metrics["cost/peak_memory_gib"] > 0


# ---- the cell's training, as ablate.cell.run_cell does it, in `world` processes ----

def _train(grid_path: str, home: str, out: str, resume: bool) -> None:
    import torch

    from ablate.cell import CellHooks, SilentLogger, seed_everything, stage_batches, stage_optimizer
    from ablate.checkpoint import resume_state
    from ablate.models.build import build_mllm
    from ablate.resolve import load_grid
    from ablate.train import parallel
    from ablate.train.loop import TrainState, train_stages
    from ablate.train.speed import frozen_throughout
    from ablate.workspace import Workspace
    from ablate.world import build_world

    torch.set_num_threads(1)
    parallel.init_from_env(timeout=120)
    cell = load_grid(grid_path).cells[0]
    cfg, workspace = cell.config, Workspace.create(home=home)
    seed_everything(cfg.train.seed)
    world = build_world(cfg.data.world, workspace.cache)
    model = build_mllm(cfg, workspace.cache, None)
    if cfg.train.parallel == "fsdp" and parallel.active():   # as run_cell: shards first, then the optimiser
        parallel.shard_model(model, set(frozen_throughout(model, cfg.train)))
    optim, slots = stage_optimizer(cfg, model)
    resumed = resume_state(workspace.checkpoints(cell.id) / "last", model, *slots) if resume else None
    state = resumed.state if resumed else TrainState()
    resumed_at = state.step
    rows = parallel.shard(cfg.train.batch_size) if parallel.active() else None
    hooks = CellHooks(cell, model, SilentLogger(), None, workspace)
    state = train_stages(parallel.parallelize(model, cfg.train.parallel), cfg.train, optim,
                         stage_batches(cfg, world, model, rows=rows), hooks, state, slots)
    if parallel.is_main():
        with open(out, "w") as f:
            json.dump({"losses": state.losses, "ranks": parallel.world_size(), "resumed_at": resumed_at}, f)
    parallel.leave()


def _rank(rank: int, world: int, port: int, args: tuple) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    _train(*args)


def run_ranks(world: int, grid_path, home, out, resume: bool = False) -> dict:
    args = (str(grid_path), str(home), str(out), resume)
    if world == 1:
        _train(*args)
    else:
        import torch.multiprocessing as mp

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        mp.start_processes(_rank, args=(world, port, args), nprocs=world, start_method="spawn")
    return json.loads(out.read_text())


def close(a: list, b: list) -> bool:
    """Same steps, each loss within TOLERANCE (relative, or absolute below 1)."""
    return len(a) == len(b) and all(s == t and abs(x - y) <= TOLERANCE * max(1.0, abs(y))
                                    for (s, x), (t, y) in zip(a, b))


TWO_STAGES = ("train.stages: {align-tune: [{name: align, steps: 10, lr_multipliers: {llm: 0.0}}, "
              "{name: tune, steps: 10}]}")


@pytest.mark.slow
@pytest.mark.parametrize("axes", ["connector.name: [mlp]", TWO_STAGES], ids=["one-stage", "two-stages"])
def test_two_processes_train_like_one_and_their_checkpoint_resumes_in_one(tiny_grid, tmp_path, axes):
    """20 steps at global batch 4: 2 gloo ranks (2 rows each) give the 1-process losses; the checkpoint the
    2-process run wrote last (step 15) resumes in 1 process and continues on the same curve. Two stages: the LLM
    frozen for 10 steps, then trained (DDP is rebuilt when what trains changes; the resume lands in stage 2)."""
    if sys.platform != "linux":
        pytest.skip("gloo processes on Linux")
    grid = tiny_grid(axes=axes, steps=20)   # checkpoints every 5 steps
    one = run_ranks(1, grid, tmp_path / "one", tmp_path / "one.json")
    two = run_ranks(2, grid, tmp_path / "two", tmp_path / "two.json")
    assert one["ranks"] == 1 and two["ranks"] == 2 and len(one["losses"]) == 20
    assert one["losses"][-1][1] < one["losses"][0][1]          # it trains
    assert close(two["losses"], one["losses"]), (two["losses"], one["losses"])
    resumed = run_ranks(1, grid, tmp_path / "two", tmp_path / "resumed.json", resume=True)
    assert resumed["resumed_at"] == 15
    assert close(resumed["losses"], one["losses"]), (resumed["losses"], one["losses"])
    print("largest relative difference, 2 processes vs 1:",
          max(abs(x - y) / abs(y) for (_, x), (_, y) in zip(two["losses"], one["losses"])))


@pytest.mark.slow
@pytest.mark.parametrize("axes", ["connector.name: [mlp]", TWO_STAGES, "train.activation_checkpointing: [true]"],
                         ids=["one-stage", "two-stages", "activation-checkpointing"])
def test_fsdp_on_two_processes_trains_like_one_and_its_sharded_checkpoint_resumes_in_one_and_two(
        tiny_grid, tmp_path, axes):
    """`train.parallel: fsdp`: 20 steps at global batch 4 on 2 gloo ranks (each LLM block and the root sharded
    by FSDP2, the optimiser on the shards, the gradient norm clipped over the shards) give the 1-process losses
    within the DDP tolerance. The checkpoint of step 15 is a DCP folder of both ranks' shards; 1 process and 2
    processes resume it (DCP reshards) and continue on the same curve. With activation checkpointing (the LLM's
    blocks recomputed in the backward pass) composed with the sharding, the same."""
    if sys.platform != "linux":
        pytest.skip("gloo processes on Linux")
    grid = tiny_grid(axes=axes, steps=20, extra="  # fsdp\n")
    text = grid.read_text().replace("lr: 0.003,", "lr: 0.003, parallel: fsdp, grad_clip: 0.05,")
    grid.write_text(text)   # a clip that acts at every step: a norm not reduced over the shards would differ
    one = run_ranks(1, grid, tmp_path / "one", tmp_path / "one.json")
    two = run_ranks(2, grid, tmp_path / "two", tmp_path / "two.json")
    assert one["ranks"] == 1 and two["ranks"] == 2 and len(one["losses"]) == 20
    assert one["losses"][-1][1] < one["losses"][0][1]
    assert close(two["losses"], one["losses"]), (two["losses"], one["losses"])
    print("largest relative difference, 2 FSDP processes vs 1:",
          max(abs(x - y) / abs(y) for (_, x), (_, y) in zip(two["losses"], one["losses"])))
    last = next((tmp_path / "two" / "checkpoints").glob("*/last"))
    assert sorted(p.name for p in (last / "dcp").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert not (last / "model.safetensors").exists()
    for world in (1, 2):
        resumed = run_ranks(world, grid, tmp_path / "two", tmp_path / f"resumed{world}.json", resume=True)
        assert resumed["resumed_at"] == 15 and resumed["ranks"] == world
        assert close(resumed["losses"], one["losses"]), (world, resumed["losses"], one["losses"])


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["sigkill", "hang"])
def test_a_rank_killed_or_hung_mid_cell_fails_the_cell_and_the_rerun_finishes_it(tiny_grid, tmp_path, workspace,
                                                                                 fault):
    """`ablate run GRID --runner <multigpu, torchrun, 2 processes>` on the CPU: rank 1 is SIGKILLed, or hangs
    deaf to SIGTERM, at step 7 (once; the checkpoint of step 5 is written): the cell FAILS with a reason naming the
    rank and the signal (torchrun's agent's failure record), or naming the hung rank, which the wrapper killed
    HUNG_GRACE_S after rank 0's all-reduce timed out (ABLATE_COLLECTIVE_TIMEOUT_S, 15 s here; not the agent's 30 s
    close, nor the 600 s time limit); the grid goes on; the next run resumes from step 5 on both ranks and leaves a
    FINISHED run."""
    import textwrap

    from ablate.resolve import load_grid
    from ablate.runners import load_runner
    from ablate.tracking.store import REASON_TAG, Store

    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import os, signal, time
        import ablate.cell as _cell
        _on_step = _cell.CellHooks.on_step
        def on_step(self, step, loss, lr):
            _on_step(self, step, loss, lr)
            marker = {str(faults / "killed")!r}
            if step == 7 and os.environ.get("RANK") == "1" and not os.path.exists(marker):
                open(marker, "w").close()
                if {fault!r} == "hang":
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                    time.sleep(3600)
                os.kill(os.getpid(), signal.SIGKILL)
        _cell.CellHooks.on_step = on_step
        """))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runner_path = tmp_path / "multigpu.yaml"
    runner_path.write_text("kind: multigpu\nlauncher: torchrun\ngpus: 2\ntime_limit_s: 600\n"
                           f"env: {{OMP_NUM_THREADS: '1', ABLATE_COLLECTIVE_TIMEOUT_S: '15', "
                           f"PYTHONPATH: '{faults}:{repo}'}}\n")
    grid = load_grid(tiny_grid(axes="connector.name: [mlp]", steps=10))
    cell = grid.cells[0]
    first = load_runner(runner_path).run(grid, workspace)
    assert (faults / "killed").exists() and cell.id in first.failed, first
    expected = {"sigkill": "error: rank 1 was killed by SIGKILL (exit code -9)",
                "hang": "error: rank 1 hung: still running when rank 0's collective timed out waiting for it "
                        "(ABLATE_COLLECTIVE_TIMEOUT_S); killed by the wrapper (SIGKILL) after rank 0 ended"}[fault]
    assert expected in first.failed[cell.id], first.failed
    store = Store(workspace.tracking_uri, workspace.artifacts)
    runs = [r for r in store.runs(store.experiment_id(grid)) if r.cell_id == cell.id]
    assert runs and all(r.status != "RUNNING" for r in runs)
    assert expected in max(runs, key=lambda r: r.start_time).tags[REASON_TAG]
    second = load_runner(runner_path).run(grid, workspace)
    assert second.finished == [cell.id], second
    runs = [r for r in store.runs(store.experiment_id(grid)) if r.cell_id == cell.id and r.status == "FINISHED"]
    assert len(runs) == 1 and runs[0].tags.get("ablate.resumed_from_step") == "5"
    assert runs[0].tags["ablate.processes_per_attempt"] == "2,2"   # the checkpoint's attempt, then this one
    metrics = runs[0].metrics   # the cost of the attempt that finished: steps 6-10, 4 samples each, both ranks
    assert metrics["cost/processes"] == 2.0
    assert metrics["cost/samples_per_s"] * metrics["time/train_s"] == pytest.approx(5 * 4, rel=1e-6)
    log = (workspace.home / "logs" / grid.name / f"{cell.id}.log").read_text()
    assert log.count("rank 1 of 2 trains its share of cell") == 2


@pytest.mark.slow
def test_a_diverging_cell_on_two_processes_fails_with_its_step_and_reason(tiny_grid, tmp_path, workspace):
    """Every rank sees the same global loss, so all stop at the same step; rank 0's reason reaches the store
    (the other rank ends quietly instead of making the launcher stop rank 0 while it records it)."""
    from ablate.resolve import load_grid
    from ablate.runners import load_runner

    runner_path = tmp_path / "multigpu.yaml"
    runner_path.write_text("kind: multigpu\nlauncher: torchrun\ngpus: 2\nenv: {OMP_NUM_THREADS: '1'}\n")
    grid = load_grid(tiny_grid(axes="train.lr: [1.0e+12]", steps=4))
    outcome = load_runner(runner_path).run(grid, workspace)
    reason = outcome.failed[grid.cells[0].id]
    assert reason.startswith("diverged at step "), reason


def _one_finished_run_on_two_processes(workspace, grid) -> None:
    from ablate.tracking.store import Store

    store = Store(workspace.tracking_uri, workspace.artifacts)
    runs = [r for r in store.runs(store.experiment_id(grid)) if r.cell_id == grid.cells[0].id]
    assert [r.status for r in runs] == ["FINISHED"], [(r.status, r.tags) for r in runs]
    assert runs[0].metrics["cost/processes"] == 2.0 and runs[0].tags["ablate.processes_per_attempt"] == "2"
    assert runs[0].metrics["cost/peak_memory_gib_all_processes"] > runs[0].metrics["cost/peak_memory_gib"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_with_a_c10d_rendezvous_on_this_machine_train_one_cell(tiny_grid, tmp_path, workspace):
    """What each node of a 2-node job runs, here twice on 127.0.0.1: the wrapper around `torchrun --nnodes 2
    --nproc-per-node 1 --rdzv-backend c10d`; the two agents meet at the rendezvous, their ranks train the cell
    together (`train.parallel: fsdp`), and the store holds one FINISHED run of 2 processes. Both nodes exit 0."""
    import subprocess

    from ablate.resolve import load_grid

    path = tiny_grid(axes="connector.name: [mlp]", steps=4)
    path.write_text(path.read_text().replace("lr: 0.003,", "lr: 0.003, parallel: fsdp,"))
    grid = load_grid(path)
    endpoint = f"127.0.0.1:{_free_port()}"
    node = [sys.executable, "-m", "ablate.runners.multigpu", sys.executable, "-m", "torch.distributed.run",
            "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
            "--rdzv-id", "two-nodes", "-m", "ablate.runners.child", str(path), grid.cells[0].id,
            "--home", str(workspace.home), "--tracking-uri", workspace.tracking_uri]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ABLATE_COLLECTIVE_TIMEOUT_S": "120"}
    nodes = [subprocess.Popen(node, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    _one_finished_run_on_two_processes(workspace, grid)
    from ablate.checkpoint import load_for_eval

    final = workspace.checkpoints(grid.cells[0].id) / "final"   # gathered from the shards: an ordinary checkpoint
    assert (final / "model.safetensors").is_file() and not (final / "dcp").exists()
    model = load_for_eval(final, workspace.cache)
    assert model.generate([["a"]], max_new_tokens=2) and model.connector.training is False


@pytest.mark.slow
def test_the_slurm_runner_s_rendezvous_from_slurm_variables_trains_one_cell_on_two_processes(
        tiny_grid, tmp_path, workspace):
    """`runners/slurm.yaml` with 2 tasks per cell: each task runs `CellJob`, which exports RANK / WORLD_SIZE /
    MASTER_ADDR / MASTER_PORT from the Slurm variables (submitit's `TorchDistributedEnvironment`). Two local
    processes with the variables Slurm (and submitit's sbatch script) would give tasks 0 and 1 of one job on one
    node train the cell together."""
    import subprocess

    from ablate.resolve import load_grid

    path = tiny_grid(axes="connector.name: [mlp]", steps=4)
    grid = load_grid(path)
    call = ("import sys; from ablate.runners.slurm import CellJob; "
            f"sys.exit(CellJob()({str(path)!r}, {grid.cells[0].id!r}, {str(workspace.home)!r}, "
            f"{workspace.tracking_uri!r}, {str(workspace.reports)!r}))")
    slurm = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "2", "SLURM_JOB_NUM_NODES": "1",
             "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "localhost", "MASTER_PORT": str(_free_port()),
             "OMP_NUM_THREADS": "1", "ABLATE_COLLECTIVE_TIMEOUT_S": "120"}
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "LOCAL_RANK")}
    tasks = [subprocess.Popen([sys.executable, "-c", call], env={**env, **slurm, "SLURM_PROCID": str(rank),
                                                                 "SLURM_LOCALID": str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    outputs = [t.communicate(timeout=600)[0] for t in tasks]
    assert [t.returncode for t in tasks] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    _one_finished_run_on_two_processes(workspace, grid)


def test_the_wrapper_names_the_rank_the_signal_and_the_error_file_of_the_failure_that_ended_the_cell(tmp_path,
                                                                                                    monkeypatch):
    """From torchrun's agent's failure records (`ProcessFailure`: exit code, signal, the error file a failed rank
    writes with torch.distributed.elastic's error handler), not from the words of an exception."""
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler, ProcessFailure

    from ablate.runners.multigpu import name_failures

    error_file = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    try:
        raise ValueError("the batch has <image> tokens but no images")
    except ValueError as err:
        ErrorHandler().record_exception(err)
    failed = ProcessFailure(local_rank=1, pid=11, exitcode=3, error_file=str(error_file))
    killed = ProcessFailure(local_rank=1, pid=12, exitcode=-9, error_file="<N/A>")
    rank0 = ProcessFailure(local_rank=0, pid=10, exitcode=3, error_file="<N/A>")
    assert name_failures({1: killed, 0: rank0}, 3, True, [0, 1]) == "rank 1 was killed by SIGKILL (exit code -9)"
    assert name_failures({1: failed}, 3, True, [0, 1]) == \
        "rank 1 failed: ValueError: the batch has <image> tokens but no images (exit code 3)"
    # rank 0 gave up on a collective while rank 1 still ran: rank 1 hung (killed by the wrapper, or stopped)
    assert name_failures({0: rank0, 1: killed}, 3, True, [0, 1], killed=[12]).startswith(
        "rank 1 hung: still running when rank 0's collective timed out waiting for it")
    assert name_failures({0: rank0}, 3, True, [0, 1]).endswith("stopped by the launcher after rank 0 ended")
    # rank 0's own failure (not a collective: a diverged loss, a bad data file): its reason stands
    assert name_failures({0: rank0}, 3, False, [0, 1]) is None
    assert name_failures({}, 0, False, [0, 1]) is None
