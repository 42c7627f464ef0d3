"""Thread counts: fixed for a run by default; the opt-in budget follows the machine's load."""

import os
import resource
import subprocess
import sys
import time

import pytest
import torch

from maml.run.errors import UsageError
from maml.run.threads import ThreadBudget, cpu_seconds, default_threads, fixed_threads


@pytest.fixture
def four_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


class Machine:
    """A scripted clock and CPU counters: ``run(seconds, others, own)`` advances them."""

    def __init__(self):
        self.now, self.busy, self.own = 0.0, 0.0, 0.0

    def run(self, seconds, others, own):
        self.now += seconds
        self.own += own * seconds
        self.busy += (others + own) * seconds

    def read(self):
        return self.busy, self.own


def budget_on(machine, interval=2.0):
    return ThreadBudget(interval, read=machine.read, clock=lambda: machine.now, enabled=True)


def test_threads_follow_the_cores_other_processes_leave(four_threads):
    machine = Machine()
    budget = budget_on(machine)
    assert budget.threads == 4
    machine.run(2.0, others=0.2, own=3.8)  # background noise
    assert budget.update() == 4 and torch.get_num_threads() == 4
    machine.run(2.0, others=1.0, own=3.0)  # another process takes a core
    assert budget.update() == 3 and torch.get_num_threads() == 3
    machine.run(2.0, others=3.9, own=0.1)  # the machine is full
    assert budget.update() == 1 and torch.get_num_threads() == 1
    machine.run(2.0, others=0.0, own=1.0)  # it has left
    assert budget.update() == 4 and torch.get_num_threads() == 4


def test_threads_change_only_after_an_interval_and_are_restored(four_threads):
    machine = Machine()
    budget = budget_on(machine)
    machine.run(1.0, others=2.0, own=2.0)
    assert budget.update() == 4  # too soon to judge
    machine.run(1.5, others=2.0, own=2.0)
    assert budget.update() == 2
    budget.restore()
    assert torch.get_num_threads() == 4 and budget.threads == 4


def test_a_budget_not_enabled_never_changes_the_threads(four_threads):
    machine = Machine()
    budget = ThreadBudget(read=machine.read, clock=lambda: machine.now, enabled=False)
    machine.run(3.0, others=3.9, own=0.1)
    assert budget.update() == 4 and torch.get_num_threads() == 4


def test_the_default_thread_count_is_the_users_or_the_cores_never_the_load(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert default_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(UsageError, match="OMP_NUM_THREADS='many' is not a thread count"):
        default_threads()


def test_fixed_threads_computes_with_its_count_and_gives_torch_back_its_own(four_threads):
    with fixed_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 4


# Another process's work on our cores: about half a second of CPU time, then it exits.
SPIN = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.5: pass"


def cpu_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_cpu_seconds_counts_our_work_as_ours_and_another_processs_as_only_busy():
    """The budget takes the other processes' load as the busy time of our cores less our own, so
    our work must show in both counters and another process's in the busy time alone (even once
    it has exited and been waited for). Each comparison asks for half: the kernel keeps these
    counts in clock ticks, and the machine's apart from the process's."""
    busy, own = cpu_seconds()
    deadline = time.monotonic() + 10
    while cpu_seconds()[1] - own < 0.5 and time.monotonic() < deadline:
        sum(i * i for i in range(10**4))  # some CPU time of our own
    busy_ours, own_ours = cpu_seconds()
    ours = own_ours - own
    assert ours >= 0.5, "this process's CPU time did not grow while it computed"
    assert busy_ours - busy >= ours / 2, (busy_ours - busy, ours)

    children = cpu_of_children()
    subprocess.run([sys.executable, "-c", SPIN], check=True)  # we wait, it computes
    child = cpu_of_children() - children
    busy_after, own_after = cpu_seconds()
    assert child >= 0.5
    assert own_after - own_ours < child / 2, (own_after - own_ours, child)
    others = (busy_after - busy_ours) - (own_after - own_ours)
    assert others >= child / 2, (others, child)
