"""Data-parallel training across the processes ``torchrun`` starts (``torchrun --nproc_per_node N -m
attnkit train CONFIG``): PyTorch's own ``torch.distributed`` and ``DistributedDataParallel`` (gloo on
CPUs, NCCL on GPUs), no launcher and no gradient all-reduce of ours.

Every rank forms the same batches (a pure function of seed and epoch), ``accumulate x ranks`` times
the configured size, and cuts each into as many shares (``Trainer.updates``); each rank runs its
shares through its DDP replica, whose backward pass averages the gradients over the ranks (only on
the last micro-batch of an update: the others run under ``no_sync``). The trainer then scales them
by ``ranks / tokens of all ranks``: N ranks with batch B train as one process with batch N B
(tested). Rank 0 validates, logs and writes checkpoints; its decision to stop reaches every rank.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from attnkit.errors import UserError

# rank 0 validates while the others wait in the next collective: a long validation must not time out
WAIT = timedelta(hours=3)


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
        gpu = torch.cuda.is_available()
        if gpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if gpu else "gloo", timeout=WAIT, **attempt_store())
    return World(dist.get_rank(), dist.get_world_size())


def attempt_store() -> dict:
    """Under torchrun, the process group's keys in the agent's store under a prefix of their own per
    attempt: without it, the workers of a restarted job (``--max-restarts``) read the addresses the
    dead attempt's workers left there and fail to connect (seen with torch 2.13 and ``--standalone``)."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    size = int(os.environ["WORLD_SIZE"])
    agent = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), size, is_master=False,
                          timeout=WAIT)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return {"store": dist.PrefixStore(f"attnkit/attempt_{attempt}", agent), "rank": int(os.environ["RANK"]),
            "world_size": size}


def restarted() -> bool:
    """True in the workers torchrun restarts after a failure (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def _device() -> torch.device:
    """Where this rank's collectives run: its GPU under NCCL, the CPU under gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def sum_over_ranks(values: Tensor, world: World) -> Tensor:
    """``values`` added up over every rank (one process: unchanged)."""
    if world.size == 1:
        return values
    box = values.to(_device())
    dist.all_reduce(box, op=dist.ReduceOp.SUM)
    return box.to(values.device)


def from_main(value: int, world: World) -> int:
    """Rank 0's ``value`` on every rank."""
    if world.size == 1:
        return value
    box = torch.tensor([value], dtype=torch.long, device=_device())
    dist.broadcast(box, src=0)
    return int(box.item())


def gather(tensor: Tensor, world: World) -> list[Tensor]:
    """Every rank's ``tensor`` (all of one shape), in rank order, on the CPU."""
    if world.size == 1:
        return [tensor.cpu()]
    box = tensor.to(_device())
    boxes = [torch.empty_like(box) for _ in range(world.size)]
    dist.all_gather(boxes, box)
    return [b.cpu() for b in boxes]


def wait_for_main(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def leave(world: World) -> None:
    """End this rank's part in the job, all ranks together (one leaving while another still sends
    can abort it at exit)."""
    if world.size > 1:
        dist.barrier()
        dist.destroy_process_group()


def replicate(module: nn.Module, world: World, device: torch.device) -> nn.Module:
    """``module`` as this rank's DDP replica, starting from rank 0's weights and buffers. A parameter
    that no rank's batch reaches in a step (a layer a model skips, a tied copy) keeps no gradient."""
    ddp = nn.parallel.DistributedDataParallel
    # buffers start as rank 0's and none of attnkit's change in training: no broadcast before each forward
    quiet = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters
             else {"broadcast_buffers": False})  # the name before torch 2.13
    return ddp(module, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True,
               **quiet)


def peer_lost(err: BaseException) -> bool:
    """Whether ``err`` is a collective that failed because another rank went away (gloo reports it as a
    RuntimeError naming itself, NCCL as a DistBackendError)."""
    return isinstance(err, dist.DistError) or (
        isinstance(err, RuntimeError) and any(s in str(err) for s in ("gloo", "NCCL", "Connection reset",
                                                                      "Connection closed")))


def lost_rank(world: World, step: int) -> UserError:
    """The one-line error of a rank whose collective failed because another rank ended."""
    return UserError(f"rank {world.rank}: another rank of the job ended at step {step + 1} (torchrun's report "
                     f"names it); the run directory keeps its last checkpoint: --resume continues from there")
