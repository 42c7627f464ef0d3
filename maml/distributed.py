"""Training past one process: the ranks that ``torchrun`` starts, each with its share of a
meta-batch's tasks (``torch.distributed``: gloo on the CPU, NCCL on CUDA).

One process is the default and needs nothing here: a :class:`Ranks` of one rank makes every
collective a no-op. Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank draws the same tasks from
the run's seed and iteration and takes a contiguous block of them, so N ranks train on the same
tasks as one process, and a run resumes on any number of ranks.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from maml.errors import UsageError
from maml.runs import resolve_device

# A rank that waits longer than this in a collective gives up with an error (a peer has died and
# torchrun has not stopped the group yet): no hang.
TIMEOUT = datetime.timedelta(seconds=int(os.environ.get("MAML_COLLECTIVE_TIMEOUT", "300")))


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks of a run."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0 alone writes TensorBoard, checkpoints and the config."""
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's contiguous block of ``n`` tasks (sizes differ by at most one)."""
        return slice(n * self.rank // self.world, n * (self.rank + 1) // self.world)

    def sum(self, tensors: list[Tensor]) -> None:
        """Sum each tensor over the ranks, in place (one flat all-reduce)."""
        if self.world == 1 or not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        offset = 0
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` is true on any rank (the same answer on every rank)."""
        if self.world == 1:
            return flag
        value = torch.tensor([float(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


ONE_PROCESS = Ranks()


def world_size() -> int:
    """The number of ranks torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def start(device: str, tasks: int) -> tuple[Ranks, torch.device]:
    """Join the ranks torchrun started, if any, and pick this rank's device: on CUDA, the GPU of
    its local rank (NCCL); on the CPU, gloo. ``tasks`` (the meta-batch) must give every rank one."""
    world = world_size()
    if world == 1:
        return Ranks(), resolve_device(device)
    if tasks < world:
        raise UsageError(
            f"--meta-batch {tasks} is smaller than the {world} ranks: each rank needs a task"
        )
    chosen = resolve_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT)
    return Ranks(dist.get_rank(), dist.get_world_size()), chosen


def stop() -> None:
    """Leave the group (at the end of a run)."""
    if dist.is_initialized():
        dist.destroy_process_group()
