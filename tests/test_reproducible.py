"""Same command, same result: a run's parameters do not depend on what else runs on the machine,
and a run stopped and resumed beside a busy process equals one that ran straight through."""

import os
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from maml.run.checkpoint import load_checkpoint
from maml.run.config import read_toml
from tests.omniglot_fixture import write_omniglot

# Omniglot's conv net and navigation's policy round differently on 1 and 2 threads (a sum's
# order), so a thread count that followed the load would show; each run trains for a few seconds,
# longer than the load-following budget's 2-second measuring interval.
OMNIGLOT = ["-m", "maml_sl.train", "--task", "omniglot", "--ways", "3", "--shots", "1"]
OMNIGLOT += ["--query", "2", "--meta-batch", "4", "--filters", "8", "--val-tasks", "3"]
OMNIGLOT += ["--inner-lr", "0.4", "--train-on", "images_background", "--device", "cpu"]
OMNIGLOT += ["--test-on", "images_evaluation", "--checkpoint-every", "100000"]
NAVIGATION = ["-m", "maml_rl.train", "--env", "navigation-2d", "--meta-batch", "8"]
NAVIGATION += ["--rollouts", "8", "--val-every", "0", "--device", "cpu", "--seed", "5"]
pytestmark = pytest.mark.slow  # trainings in processes of their own, beside a busy one
# The default thread count, as a user's run gets it (not one the test machine's shell chose).
ENV = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT")}


@contextmanager
def busy_process():
    """Another process keeping a core busy for as long as the block runs."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    try:
        yield
    finally:
        process.kill()
        process.wait()


def train(args, timeout=300):
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )
    assert result.returncode == 0, result.stderr[-2000:]


def assert_identical(a, b):
    first, second = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert first["iteration"] == second["iteration"]
    for name, value in first["learner"].items():
        assert torch.equal(second["learner"][name], value), f"{name} differs"


def straight_loaded_and_resumed(args, iterations, stop_at, tmp_path):
    """One run straight through alone; one beside a busy process; one beside a busy process
    that stops at ``stop_at`` and is resumed (in a new process) to the end."""
    alone, loaded, resumed = (tmp_path / name for name in ("alone", "loaded", "resumed"))
    train([*args, "--iterations", str(iterations), "--run-dir", str(alone)])
    with busy_process():
        train([*args, "--iterations", str(iterations), "--run-dir", str(loaded)])
        train([*args, "--iterations", str(stop_at), "--run-dir", str(resumed)])
        train([args[0], args[1], "--resume", str(resumed), "--iterations", str(iterations)])
    return alone, loaded, resumed


def test_supervised_runs_give_the_same_parameters_alone_beside_a_busy_process_and_resumed(
    tmp_path,
):
    data = tmp_path / "omniglot"
    write_omniglot(data, "images_background", alphabets=3, characters=4, seed=0)
    write_omniglot(data, "images_evaluation", alphabets=2, characters=3, seed=1)
    runs = straight_loaded_and_resumed([*OMNIGLOT, "--data", str(data)], 60, 25, tmp_path)
    for run in runs[1:]:
        assert_identical(runs[0], run)
    threads = len(os.sched_getaffinity(0))
    assert read_toml(runs[2] / "config.toml")["threads"] == threads
    history = read_toml(runs[2] / "history.toml")["history"]
    assert [h["threads"] for h in history] == [threads, threads]


def test_rl_runs_give_the_same_parameters_alone_beside_a_busy_process_and_resumed(tmp_path):
    runs = straight_loaded_and_resumed(NAVIGATION, 5, 2, tmp_path)
    for run in runs[1:]:
        assert_identical(runs[0], run)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_resume_keeps_the_runs_thread_count(tmp_path, threads):
    run = tmp_path / "run"
    train([*NAVIGATION, "--iterations", "1", "--threads", str(threads), "--run-dir", str(run)])
    train(["-m", "maml_rl.train", "--resume", str(run), "--iterations", "2"])
    history = read_toml(run / "history.toml")["history"]
    assert [h["threads"] for h in history] == [threads, threads]
    assert read_toml(run / "config.toml")["threads"] == threads
    # What torch computed with, in each process: the first iteration of each logs it.
    events = EventAccumulator(str(run)).Reload().Scalars("charts/torch_threads")
    assert [(e.step, e.value) for e in events] == [(1, threads), (2, threads)]
