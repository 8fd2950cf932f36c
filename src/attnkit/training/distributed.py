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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from attnkit.errors import UserError

# outside the training loop: the others wait while rank 0 prepares the data (tokenizers, corpora) and
# scores the test set; training.collective_timeout bounds the waits of the loop (collective_timeout)
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
        # gloo for tensors on the CPU (the trainer's small collectives; everything in a CPU run), NCCL for
        # those on a GPU (DDP's gradients in a GPU run)
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, timeout=WAIT, **attempt_store())
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


@contextmanager
def collective_timeout(world: World, minutes: float) -> Iterator[None]:
    """How long a rank waits for the others in one collective of the training loop
    (``training.collective_timeout``): rank 0 validates and writes checkpoints while the others wait in
    the next one, so it must outlast those; a rank that hangs ends the job after it. Outside the loop
    (data preparation, the test set) the wait is ``WAIT``."""
    if world.size == 1:
        yield
        return
    dist.distributed_c10d._set_pg_timeout(timedelta(minutes=minutes))  # (no public setter in torch 2.13)
    yield
    dist.distributed_c10d._set_pg_timeout(WAIT)  # (not after an error: the job is ending, its group may be gone)


def restarted() -> bool:
    """True in the workers torchrun restarts after a failure (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def sum_over_ranks(values: Tensor, world: World) -> Tensor:
    """``values`` (on the CPU) added up over every rank (one process: unchanged)."""
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


def from_main_numbers(values: dict[str, int | float], world: World) -> dict[str, int | float]:
    """Rank 0's numbers under the same names on every rank (a schedule's state: its learning rate)."""
    if world.size == 1:
        return values
    box = torch.tensor([float(v) for v in values.values()], dtype=torch.float64)
    dist.broadcast(box, src=0)
    return {k: type(v)(x) for (k, v), x in zip(values.items(), box.tolist())}


def gather(tensor: Tensor, world: World) -> list[Tensor]:
    """Every rank's ``tensor`` (all of one shape), in rank order, on the CPU."""
    if world.size == 1:
        return [tensor.cpu()]
    boxes = [torch.empty_like(tensor.cpu()) for _ in range(world.size)]
    dist.all_gather(boxes, tensor.cpu())
    return boxes


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
    # gloo's words vary with where the wait ends: in a backward's all-reduce a hung peer is "Application
    # timeout caused pair closure", with no "gloo" in it
    return isinstance(err, dist.DistError) or (
        isinstance(err, RuntimeError) and any(s in str(err) for s in ("gloo", "NCCL", "Connection reset",
                                                                      "Connection closed", "pair closure",
                                                                      "Timed out", "timed out")))


def lost_rank(world: World, step: int, err: BaseException, waited: bool = False) -> UserError:
    """The one-line error of a rank whose collective failed because another rank ended or hung (``waited``:
    the step had waited for the others as long as the timeout allows)."""
    if waited or any(words in str(err).lower() for words in ("timed out", "timing out", "timeout")):  # gloo, NCCL
        return UserError(f"rank {world.rank}: another rank of the job did not answer within "
                         f"training.collective_timeout at step {step + 1}; --resume continues from the run's last "
                         "checkpoint, if it wrote one")
    return UserError(f"rank {world.rank}: another rank of the job ended at step {step + 1} (torchrun's report "
                     f"names it); --resume continues from the run's last checkpoint, if it wrote one")
