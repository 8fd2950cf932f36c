"""Data-parallel training across the processes ``torchrun`` starts (``torchrun --nproc_per_node N -m
attnkit train CONFIG``): PyTorch's own ``torch.distributed`` (gloo on CPUs, NCCL on GPUs), no launcher
of ours.

Every rank forms the same batches (a pure function of seed and epoch), ``accumulate x ranks`` times
the configured size, and cuts each into as many shares (``Trainer.updates``); each rank runs its
shares, and the summed gradients and token counts of all ranks are added up with ``all_reduce``
before the update is divided by the global token count: N ranks with batch B train as one process
with batch N B (tested). Rank 0 validates, logs and writes checkpoints; its decision to stop reaches
every rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """The rank that validates, logs and writes."""
        return self.rank == 0


def join() -> World:
    """This process's place among the ranks torchrun started (one process alone: ``World()``)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def sum_over_ranks(values: Tensor, world: World) -> Tensor:
    """``values`` added up over every rank, in place (one process: unchanged)."""
    if world.size > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def from_main(value: int, world: World) -> int:
    """Rank 0's ``value`` on every rank."""
    if world.size == 1:
        return value
    box = torch.tensor([value], dtype=torch.long)
    dist.broadcast(box, src=0)
    return int(box.item())


def same_start(module: torch.nn.Module, world: World) -> None:
    """Every rank starts from rank 0's weights (and buffers)."""
    if world.size > 1:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def wait_for_main(world: World) -> None:
    if world.size > 1:
        dist.barrier()
