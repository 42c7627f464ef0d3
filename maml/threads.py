"""Torch's CPU thread count, kept to the cores that other processes leave idle.

torch's CPU build runs its parallel regions on an OpenMP team of one thread per core, whose idle
workers spin before they sleep: the fastest on an idle machine. When another process keeps a
core busy, the team waits at every barrier for a thread that is not running, and a small step
becomes many times slower (``python -m benchmarks.speed_load``). No OpenMP wait setting keeps
the idle speed and survives the load, so the trainers measure instead: every few seconds they
read how much CPU time the machine spent outside this process and size the team to the cores
that are left (at least one). A thread count the user chose (``OMP_NUM_THREADS``) is kept.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable

import torch

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


def _available() -> bool:
    if "OMP_NUM_THREADS" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        cpu_seconds()
    except (OSError, ValueError, AttributeError):
        return False
    return True


class ThreadBudget:
    """Call :meth:`update` once per iteration; it resizes torch's team when the load changes.

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
