"""Data-parallel training of one cell on `torch.distributed` (docs/runners.md, "multigpu").

The strategy is applied from outside to the built MLLM, torchtitan's way (`parallelize(model) -> model`), so the
training loop (`ablate.train.loop`) is the same for one process and for many:

- `init_from_env()`: the process group from the launcher's environment (torchrun / accelerate set `RANK`,
  `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`): gloo on the CPU, nccl on CUDA, with a collective
  timeout so that a dead or hung rank fails the cell in bounded time instead of blocking it for ever.
- `parallelize(model)`: with one process, the model itself (nothing changes: single-process runs are bit for bit
  what they were). With several, a `DataParallelMLLM`: PyTorch's `DistributedDataParallel` over the MLLM
  (gradients all-reduced in buckets while the backward pass runs), rebuilt when the set of trained parameters
  changes (a training stage that freezes or unfreezes a module), and a loss normalised by the GLOBAL number of
  labelled tokens, so N processes compute the gradients one process computes on the whole batch.
- `parallelize(model, "fsdp")` (`train.parallel: fsdp`): FSDP2, torchtitan's way: `fully_shard` on each LLM block,
  then on the MLLM (the root: embeddings, head, connector, a trained encoder); an encoder frozen in every stage is
  left unsharded (`ignored_params`): it is small against the LLM, holds no gradients or optimiser state, and runs
  outside the root's forward (feature prefetch, the feature cache). On CUDA, parameters are gathered in bf16 and
  gradients reduced in fp32 (`MixedPrecisionPolicy`). The optimiser must be built after sharding (on the DTensor
  parameters): `fully_shard` replaces each parameter by a DTensor one, so an optimiser built before would update
  tensors the model no longer uses; `ablate.cell` shards first. `torch.nn.utils.clip_grad_norm_` reduces the norm
  of sharded gradients over the ranks itself (its result is a replicated DTensor).
- `shard(size, rank, world)`: which rows of each global batch a rank takes (`ablate.data.train_batches`).
"""
from __future__ import annotations

import inspect
import logging
import os
import sys
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)

DISTRIBUTED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                   "ROLE_WORLD_SIZE", "GROUP_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
TIMEOUT_ENV = "ABLATE_COLLECTIVE_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0   # a collective (a step's all-reduce, a checkpoint wait) that takes longer fails the cell
DDP_OPTIONS = inspect.signature(DistributedDataParallel.__init__).parameters   # they changed across releases
_announced = False          # rank 0 has told the others whether the cell trains (`announce`)
collective_broke = False    # this process's cell failed on a broken collective (`rank_failures_named`)


def launched() -> bool:
    """Whether a launcher started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def timeout_s() -> float:
    return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))


def init_from_env(timeout: float | None = None) -> bool:
    """Join the launcher's process group (gloo on the CPU, nccl with CUDA); False when this is one process."""
    if not launched():
        return False
    if active():
        return True
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout or timeout_s()))
    log.info("rank %d of %d (%s, collective timeout %.0f s)", dist.get_rank(), dist.get_world_size(),
             dist.get_backend(), timeout or timeout_s())
    return True


def leave() -> None:
    """Leave the process group and forget the launcher's environment: what follows (rank 0's evaluation, whose
    lmms-eval / accelerate read RANK and WORLD_SIZE) runs as one process."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        sharded = sys.modules.get("ablate.train.sharded")   # its checkpoint barrier's group went with it
        if sharded is not None:
            sharded.forget_groups()
    for key in DISTRIBUTED_ENV:
        os.environ.pop(key, None)


def shard(size: int, index: int | None = None, count: int | None = None) -> slice:
    """The rows of a global batch of `size` rows that rank `index` of `count` takes: contiguous, disjoint, together
    all of them, sizes differing by at most one (the loss is normalised globally, so unequal shares are exact)."""
    index = rank() if index is None else index
    count = world_size() if count is None else count
    if size < count:
        raise ValueError(f"train.batch_size {size} is smaller than the {count} processes training the cell: "
                         "every process needs at least one row of each batch")
    base, extra = divmod(size, count)
    start = index * base + min(index, extra)
    return slice(start, start + base + (index < extra))


def announce(decision: str) -> None:
    """Rank 0 tells the other ranks what to do with the cell: "train" (it holds the claim and a run) or "skip"
    (finished or held elsewhere, or rank 0 failed before training). Once per process (the first decision counts);
    a no-op in one process or on other ranks."""
    global _announced
    if active() and is_main() and not _announced:
        dist.broadcast_object_list([decision], src=0)
        _announced = True


def receive() -> str:
    """What rank 0 announced (`announce`), on the other ranks; waits at most the collective timeout."""
    box = [None]
    dist.broadcast_object_list(box, src=0)
    return str(box[0])


class RankFailed(RuntimeError):
    """Another rank of the cell died, hung past the collective timeout or failed: this rank's collective broke."""


COLLECTIVE_ERRORS = ("gloo", "nccl", "connection reset", "connection closed", "timed out", "timeout")


@contextmanager
def rank_failures_named():
    """While several ranks train, a broken collective (a rank died, hung or failed) is raised as `RankFailed`,
    so the cell's reason in the store says what happened rather than a transport error."""
    try:
        yield
    except RuntimeError as err:
        dist_error = getattr(dist, "DistError", ())
        if not active() or not (isinstance(err, dist_error) or any(w in str(err).lower() for w in COLLECTIVE_ERRORS)):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        global collective_broke
        collective_broke = True   # rank 0 tells its launcher's wrapper (ablate.runners.multigpu): it names the rank
        raise RankFailed(f"a rank of the cell failed, hung or was killed (rank {rank()} saw: {first})") from err


def labelled_tokens(labels: torch.Tensor) -> torch.Tensor:
    """How many positions of a batch carry a next-token target (what the mean loss divides by)."""
    return (labels[:, 1:] != -100).sum()


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    out = value.detach().clone()
    dist.all_reduce(out)
    return out


class DataParallelMLLM(nn.Module):
    """An MLLM trained by `world_size()` processes: what the training loop calls instead of the model.

    Each rank runs its share of the global batch through `DistributedDataParallel(model)`. The MLLM's loss is
    the mean over the rank's labelled tokens; rescaled to `local_sum / global_count` and multiplied by the world
    size (DDP averages gradients over ranks), the all-reduced gradient is that of the mean over the whole global
    batch. The loss's value is the global mean (summed over ranks), so every rank logs and guards the same number.

    `device`, `train()`, `eval()` and the model's own attributes (`tokenizer`, `image_tokens`, `parts()`) pass
    through; checkpoints and evaluation use the unwrapped model (`.module`), whose parameters these are."""

    def __init__(self, model: nn.Module, find_unused: bool = True):
        super().__init__()
        self.module = model
        self.find_unused = find_unused
        self._replica: nn.Module | None = None
        self._trained: tuple[bool, ...] | None = None

    @property
    def device(self) -> torch.device:
        return self.module.device

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)

    def replica(self) -> nn.Module:
        """DDP over the model, (re)built when a stage changes which parameters train: DDP syncs the parameters
        that required a gradient when it was built, and expects each of them to get one every step."""
        trained = tuple(p.requires_grad for p in self.module.parameters())
        if trained == self._trained:
            return self._replica
        self._replica = None   # the previous reducer's hooks go with it
        device = self.device
        ids = [device.index] if device.type == "cuda" else None
        # buffers (rotary tables) are equal on every rank: synced when DDP is built, not before every step
        sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in DDP_OPTIONS
                else {"broadcast_buffers": False})
        # a rank whose (micro-)batch has no image leaves the connector without a gradient (text-only rows skip it):
        # DDP must then count its parameters as done (zero), or the ranks' bucket all-reduces fall out of step; a
        # traversal of the graph each step, so only when the data has text rows (`needs_unused_parameters`)
        self._replica = DistributedDataParallel(self.module, device_ids=ids, find_unused_parameters=self.find_unused,
                                                **sync)
        self._trained = trained
        return self._replica

    def no_sync(self):
        """Context: backward passes inside it accumulate gradients without all-reducing them (the micro-batches
        of `train.grad_accum` before the last)."""
        return self.replica().no_sync()

    def forward(self, input_ids, attention_mask, labels, images, pixel_values=None, features=None):
        out = self.replica()(input_ids, attention_mask, labels, images, pixel_values=pixel_values,
                             features=features)
        if labels is None or out.loss is None:
            return out
        local = labelled_tokens(labels)
        total = all_reduce_sum(local).clamp_min(1)
        share = out.loss * (local.to(out.loss.dtype) / total)   # this rank's part of the global mean
        value = all_reduce_sum(share)                            # the global mean, the same on every rank
        scaled = share * world_size()                            # DDP divides the summed gradients by the ranks
        out.loss = scaled + (value - scaled).detach()            # value: the global mean; gradient: scaled's
        return out


class ShardedMLLM(DataParallelMLLM):
    """An MLLM sharded by FSDP2 over `world_size()` processes (`shard_model`): the same global-mean loss as
    `DataParallelMLLM` (FSDP2's reduce-scatter averages the gradients over ranks, as DDP does). `module` is the
    sharded model itself (`fully_shard` works in place): its parameters are DTensors, and a checkpoint of it goes
    through torch.distributed.checkpoint (`ablate.checkpoint_dcp`)."""

    def replica(self) -> nn.Module:
        return self.module

    @contextmanager
    def no_sync(self):
        self.module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            self.module.set_requires_gradient_sync(True)


def shard_model(model: nn.Module, frozen: set[str] = frozenset(), reshard_after_forward: bool = True) -> list[str]:
    """FSDP2 over `model` in place (see the module's docstring); `frozen`: the parts no stage trains (left
    unsharded unless it is the LLM, which is always sharded: it is what does not fit). Returns what was sharded."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from ablate.train.speed import repeated_blocks

    options = {"reshard_after_forward": reshard_after_forward}
    if model.device.type == "cuda":
        options["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    blocks = repeated_blocks(model.llm)
    for block in blocks:
        fully_shard(block, **options)
    kept = {p for name in frozen - {"llm"} for p in getattr(model, name).parameters()}
    fully_shard(model, ignored_params=kept or None, **options)
    return [f"{len(blocks)} LLM blocks", "root (" + ", ".join(
        n for n in ("encoder", "connector", "llm") if n not in frozen - {"llm"}) + ")"]


def needs_unused_parameters(data_configs) -> bool:
    """Whether DDP must look for parameters without a gradient each step (`find_unused_parameters`): only when
    some micro-batch can lack images (a text or conversation source or mixture weight: a conversation record may
    hold no `<image>`), which leaves the connector unused."""
    for data in data_configs:
        if any(kind in IMAGELESS_KINDS and weight > 0 for kind, weight in data.mixture.items()):
            return True
        if any(source.kind in IMAGELESS_KINDS for source in data.sources):
            return True
    return False


IMAGELESS_KINDS = ("text", "conversation")   # data kinds whose rows may hold no image


def parallelize(model: nn.Module, strategy: str = "ddp", find_unused: bool = True) -> nn.Module:
    """The model to train with the processes of this cell: `model` itself in one process, else wrapped.
    "fsdp": `model` must already be sharded (`shard_model`, before the optimiser is built)."""
    if strategy not in ("ddp", "fsdp"):
        raise ValueError(f"parallel strategy {strategy!r}: use 'ddp' or 'fsdp'")
    if not active():
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import FSDPModule

        if not isinstance(model, FSDPModule):
            raise ValueError("parallelize(model, 'fsdp'): shard the model first (shard_model), then build the "
                             "optimiser on its sharded parameters")
        return ShardedMLLM(model)
    return DataParallelMLLM(model, find_unused)

