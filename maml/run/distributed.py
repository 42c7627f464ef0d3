"""Training past one process: the ranks that ``torchrun`` starts, each with its share of a
meta-batch's tasks (``torch.distributed``: gloo on the CPU, NCCL on CUDA).

One process is the default and needs nothing here: a :class:`Ranks` of one rank makes every
collective a no-op. Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank draws the same tasks from
the run's seed and iteration and takes a contiguous block of them, so N ranks train on the same
tasks as one process, and a run resumes on any number of ranks.
"""

from __future__ import annotations

import datetime
import importlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from maml.run.devices import resolve_device
from maml.run.errors import TrainingError, UsageError

# A rank that waits longer than this in a collective gives up with an error (a peer has died and
# torchrun has not stopped the group yet): no hang.
TIMEOUT = datetime.timedelta(seconds=int(os.environ.get("MAML_COLLECTIVE_TIMEOUT", "300")))


@dataclass
class Ranks:
    """This process's place among the ranks of a run, and its traffic so far: the seconds
    spent in all-reduces, the bytes they carried and their number (for logs and benchmarks)."""

    rank: int = 0
    world: int = 1
    seconds: float = 0.0
    bytes: int = 0
    calls: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 alone writes TensorBoard, checkpoints and the config."""
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's contiguous block of ``n`` tasks (sizes differ by at most one)."""
        return slice(n * self.rank // self.world, n * (self.rank + 1) // self.world)

    def counters(self) -> tuple[float, int, int]:
        """The traffic so far: seconds in all-reduces, bytes all-reduced, all-reduces."""
        return self.seconds, self.bytes, self.calls

    def sum(self, tensors: list[Tensor]) -> None:
        """Sum each tensor over the ranks, in place (one flat all-reduce)."""
        if self.world == 1 or not tensors:
            return
        started = time.perf_counter()
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        self.bytes += flat.numel() * flat.element_size()
        self.calls += 1
        offset = 0
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()
        self.seconds += time.perf_counter() - started

    def barrier(self) -> None:
        """Wait until every rank is here: no rank leaves the group (closing its connections)
        while a peer still works in it (gloo can then abort the leaving process)."""
        if self.world > 1:
            dist.barrier()

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` is true on any rank (the same answer on every rank)."""
        return bool(self.most(int(flag), device))

    def most(self, value: int, device: torch.device) -> int:
        """The largest of the ranks' ``value`` (the same answer on every rank)."""
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.int64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())


ONE_PROCESS = Ranks()


def cores_per_rank() -> int:
    """This rank's share of the cores this process may use (all of them for one process)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if world_size() > 1 else 1
    return max(1, len(os.sched_getaffinity(0)) // local)


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
    backend = "gloo"
    if chosen.type == "cuda":
        # The GPU of the local rank; ranks beyond the GPUs share them, which NCCL refuses (one
        # rank per GPU), so they talk over gloo, which reduces CUDA tensors through the host.
        gpus, local = torch.cuda.device_count(), int(os.environ.get("LOCAL_RANK", "0"))
        chosen = torch.device("cuda", local % gpus)
        torch.cuda.set_device(chosen)
        if int(os.environ.get("LOCAL_WORLD_SIZE", "1")) <= gpus:
            backend = "nccl"
    if not dist.is_initialized():
        # torch._dynamo (the first optimizer imports it) keeps references to the process group
        # it finds when imported: after init they keep the group, and its gloo threads, alive
        # past destroy_process_group, and a gloo thread that releases a tensor while the
        # interpreter finalizes aborts the rank ("terminate called without an active
        # exception", torch 2.13). Imported first, it finds no group.
        importlib.import_module("torch._dynamo")
        store, rank, size = next(dist.rendezvous("env://", timeout=TIMEOUT))
        # torchrun's store outlives a restart of the ranks: keys of each attempt apart, or the
        # new ranks read the dead ranks' addresses and fail to connect.
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        store = dist.PrefixStore(f"maml/attempt-{attempt}/", store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=TIMEOUT)
    return Ranks(dist.get_rank(), dist.get_world_size()), chosen


@contextmanager
def group(ranks: Ranks) -> Iterator[None]:
    """Train among ``ranks``, then leave the group. A collective that fails because a peer died
    (torchrun then stops the others, and restarts them all with ``--max-restarts``) becomes a
    one-line error instead of a traceback on every rank."""
    try:
        yield
    except (RuntimeError, dist.DistError) as error:
        if ranks.world == 1 or not _is_peer_failure(error):
            raise
        first = str(error).strip().splitlines()[0]
        raise TrainingError(
            f"rank {ranks.rank} lost its peers ({first}); the run continues from its last "
            f"checkpoint when torchrun restarts the ranks, or with --resume"
        ) from None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _is_peer_failure(error: Exception) -> bool:
    text = str(error)
    return isinstance(error, dist.DistError) or any(
        word in text for word in ("gloo", "Gloo", "NCCL", "Connection reset", "timed out")
    )
