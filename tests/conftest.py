"""Shared test helpers: a command line run in-process, tiny runs' flags, and processes of their
own that never outlive a test."""

import os
import signal
import subprocess
import sys

import pytest
import torch

from maml.run.errors import run_cli

# Tiny runs of each trainer, as command-line flags (seconds or less).
TINY_SINUSOID = ["--meta-batch", "4", "--val-tasks", "8", "--device", "cpu"]
TINY_SINUSOID += ["--checkpoint-every", "100000", "--figure-every", "100000"]
TINY_NAVIGATION = ["--env", "navigation-2d", "--meta-batch", "3", "--rollouts", "2"]
TINY_NAVIGATION += ["--horizon", "5", "--hidden", "8", "--device", "cpu", "--cg-iterations", "3"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def cli(main, args) -> int:
    """Run a command's ``main`` as its command line does (``maml.run.errors.run_cli``): its exit
    status, the one line of an error on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, args)
    return exit_info.value.code


def start_process(command, env=None) -> subprocess.Popen:
    """``command`` in a session of its own, so that it and all it starts can be killed."""
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def finish(process, timeout=180) -> subprocess.CompletedProcess:
    """Wait for ``process`` (bounded), then make sure nothing it started is left."""
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def start_training(args, run) -> tuple[subprocess.Popen, str]:
    """Start ``python ARGS`` training into ``run`` for ever and return it once it is training (its
    first line), with what it had said by then."""
    command = [sys.executable, *args, "--iterations", "1000000", "--run-dir", str(run)]
    process = start_process(command)
    seen = ""
    for line in process.stderr:
        seen += line
        if f"run {run}:" in line:
            return process, seen
    finish(process, timeout=10)
    raise AssertionError(f"training did not start: {seen}")
