"""The weights and optimiser state of a cell trained with `train.parallel: fsdp`, through torch.distributed.checkpoint.

`save` writes one DCP folder from every rank together (each rank its shards; rank 0 the metadata); `load` reads it
into the model and optimiser as they are now, sharded over any number of processes or not sharded at all (one
process): DCP reshards on load. State dicts are keyed by parameter name (`get_state_dict` / `set_state_dict`), not
by the optimiser's parameter order, so they do not depend on how the model was wrapped.

`full_weights` gathers the sharded weights into ordinary tensors on rank 0 (the final checkpoint and evaluation).
`checkpoint_barrier` keeps the ranks together around a checkpoint write with its own, longer, timeout: a slow write
by rank 0 is not a step's collective timing out on the other ranks.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from ablate.train import parallel

CHECKPOINT_TIMEOUT_ENV = "ABLATE_CHECKPOINT_TIMEOUT_S"
DEFAULT_CHECKPOINT_TIMEOUT_S = 1800.0
_barrier_group = None


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _model_state(model: nn.Module, keep: Callable[[str], bool]) -> dict:
    return {k: v for k, v in get_model_state_dict(model).items() if keep(k)}


def save(folder: Path, model: nn.Module, optimizer, keep: Callable[[str], bool]) -> None:
    """Every rank: the weights `keep` selects (by name) and the optimiser's state, as one DCP checkpoint in
    `folder` (on a file system every rank sees)."""
    state = {"model": _model_state(model, keep)}
    if optimizer is not None:
        state["optimizer"] = get_optimizer_state_dict(model, optimizer)
    dcp.save(state, checkpoint_id=str(folder))


def load(folder: Path, model: nn.Module, optimizer, keep: Callable[[str], bool]) -> None:
    """Every rank: load a checkpoint written by `save` (with any number of processes) into `model` and
    `optimizer` as they are sharded now (DCP reshards)."""
    state = {"model": _model_state(model, keep)}
    if optimizer is not None:
        state["optimizer"] = get_optimizer_state_dict(model, optimizer)   # its tensors are where DCP loads into
    dcp.load(state, checkpoint_id=str(folder))
    set_model_state_dict(model, state["model"], options=StateDictOptions(strict=False))
    if optimizer is not None:
        set_optimizer_state_dict(model, optimizer, state["optimizer"])


def full_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every rank (a collective): the model's whole state dict gathered as ordinary CPU tensors on rank 0
    (empty on the others)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def checkpoint_timeout_s() -> float:
    return float(os.environ.get(CHECKPOINT_TIMEOUT_ENV, DEFAULT_CHECKPOINT_TIMEOUT_S))


def barrier() -> None:
    """Several processes: wait for every rank, on a gloo group whose timeout is `$ABLATE_CHECKPOINT_TIMEOUT_S`
    (1800 s) rather than the collective timeout; a rank that does not arrive is named (`monitored_barrier`).
    One process: nothing."""
    global _barrier_group
    if not parallel.active():
        return
    wait = timedelta(seconds=checkpoint_timeout_s())
    if _barrier_group is None:
        _barrier_group = dist.new_group(backend="gloo", timeout=wait)
    dist.monitored_barrier(_barrier_group, timeout=wait, wait_all_ranks=True)


@contextmanager
def checkpoint_barrier():
    """Every rank waits for the others before and after the block (a checkpoint write: rank 0's alone, or every
    rank's shards), so that the ranks not writing wait here, for the checkpoint timeout, rather than in the next
    step's collective."""
    barrier()
    yield
    barrier()


def forget_groups() -> None:
    """The process group is being destroyed (`parallel.leave`): the barrier group goes with it."""
    global _barrier_group
    _barrier_group = None
