"""Torch's CPU thread count for a run: chosen once, kept, and recorded.

A different thread count sums in a different order, and TRPO's conjugate gradient amplifies the
rounding, so a run computes with one count from start to end and on every resume (``--threads``,
by default the cores this process may use, or ``OMP_NUM_THREADS``): the same command and seed
give the same parameters on the same machine whatever else runs there.

Beside other busy processes torch's OpenMP team then has more threads than free cores, and
threads that spin while they wait take the cores from those with work (``python -m
benchmarks.speed_load``); the toolkit shortens that spin when it is imported before torch
(``maml/__init__.py``). ``--follow-load`` trades exactness for speed instead: a
:class:`ThreadBudget` resizes the team to the cores other processes leave idle.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import field
from typing import Any

import torch

from maml.run.distributed import cores_per_rank
from maml.run.errors import UsageError

CpuReader = Callable[[], tuple[float, float]]


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds so far: busy on the cores this process may use, and used by this process."""
    tick = os.sysconf("SC_CLK_TCK")
    cores = {f"cpu{c}" for c in os.sched_getaffinity(0)}
    busy = 0
    with open("/proc/stat") as stat:
        for line in stat:
            fields = line.split()
            if fields and fields[0] in cores:
                user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[1:8])
                busy += user + nice + system + irq + softirq
    with open("/proc/self/stat") as own:
        fields = own.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return busy / tick, (utime + stime) / tick


def threads_field() -> Any:
    """The trainers' ``--threads`` setting (a dataclass field; None is auto)."""
    return field(
        default=None,
        metadata={
            "help": "torch CPU threads for the whole run (auto: OMP_NUM_THREADS, else this "
            "rank's cores); kept on resume, since another count rounds differently",
            "positive": True,
            "resumable": True,
        },
    )


def follow_load_field() -> Any:
    """The trainers' ``--follow-load`` setting (a dataclass field)."""
    return field(
        default=False,
        metadata={
            "help": "resize torch's threads to the cores other processes leave idle, re-measured "
            "every 2 s (faster beside other jobs, but the results then depend on the load)",
            "resumable": True,
        },
    )


def default_threads() -> int:
    """The thread count of a run that leaves it to the toolkit: ``OMP_NUM_THREADS`` where set
    (torchrun sets 1), else this rank's share of the cores, else the cores this process may use;
    never the machine's load."""
    chosen = os.environ.get("OMP_NUM_THREADS", "").strip()
    if chosen:
        try:
            count = int(chosen.split(",")[0])
        except ValueError:
            raise UsageError(
                f"OMP_NUM_THREADS={chosen!r} is not a thread count; set a positive integer"
            ) from None
        if count > 0:
            return count
    return cores_per_rank()


@contextmanager
def fixed_threads(count: int) -> Iterator[None]:
    """Compute with ``count`` torch threads inside, and give torch back its count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _available() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        cpu_seconds()
    except (OSError, ValueError, AttributeError):
        return False
    return True


class ThreadBudget:
    """Call :meth:`update` once per iteration; it resizes torch's team when the load changes
    (results then depend on the load: ``--follow-load`` only).

    ``threads`` is at most the count torch had when the budget was made; other processes' load
    is measured over at least ``interval`` seconds.
    """

    def __init__(
        self,
        interval: float = 2.0,
        read: CpuReader | None = None,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool | None = None,
    ) -> None:
        self.most = torch.get_num_threads()
        self.threads = self.most
        self.interval = interval
        self.enabled = _available() if enabled is None else enabled
        if self.enabled and read is None and not _available():
            raise UsageError(
                "--follow-load measures the load from /proc/stat, which this system does not "
                "have; leave it out"
            )
        self._read = read or cpu_seconds
        self._clock = clock
        self._last = (clock(), *self._read()) if self.enabled else None

    def update(self) -> int:
        """The thread count in use, after resizing the team if an interval has passed."""
        if not self.enabled:
            return self.threads
        now = self._clock()
        last_time, last_busy, last_own = self._last
        if now - last_time < self.interval:
            return self.threads
        busy, own = self._read()
        others = max(0.0, (busy - last_busy) - (own - last_own)) / (now - last_time)
        self._last = (now, busy, own)
        # Another process's busy core counts from half a core on: background noise does not.
        wanted = min(self.most, max(1, math.floor(self.most - others + 0.5)))
        if wanted != self.threads:
            torch.set_num_threads(wanted)
            self.threads = wanted
        return self.threads

    def restore(self) -> None:
        """Give torch back the thread count it had."""
        if self.threads != self.most:
            torch.set_num_threads(self.most)
            self.threads = self.most
