"""Run directories, devices, and small statistics shared by the front ends."""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from maml.checkpoint import load_checkpoint
from maml.config import from_dict, read_toml
from maml.errors import UsageError

DEVICES = ("auto", "cpu", "cuda")
log = logging.getLogger(__name__)
# A key only one front end's runs have: what such a run is, and the package of its commands.
FRONT_ENDS = {"env": ("an RL run", "maml_rl"), "task": ("a supervised run", "maml_sl")}
C = TypeVar("C")


def check_front_end(values: dict[str, Any], cls: type, run_dir: Path, command: str) -> None:
    """Refuse a run of the other front end (its ``config.toml`` ``values``), naming the
    ``command`` (train, evaluate) that takes it."""
    fields = {f.name for f in dataclasses.fields(cls)}
    for key, (kind, package) in FRONT_ENDS.items():
        if key in values and key not in fields:
            extra = f" --resume {run_dir}" if command == "train" else f" {run_dir}"
            raise UsageError(f"{run_dir} is {kind}: use python -m {package}.{command}{extra}")


def read_run_config(run_dir: str | Path, cls: type[C], command: str) -> C:
    """A run folder's ``config.toml`` as ``cls``; another front end's run is refused, naming the
    ``command`` (train, evaluate) that takes it."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.toml"
    if not config_path.is_file():
        raise UsageError(f"{run_dir} is not a run directory ({config_path} missing)")
    values = read_toml(config_path)
    check_front_end(values, cls, run_dir, command)
    # A 0 for these in a run's file meant auto (files that predate the word).
    zeros = getattr(cls, "ZERO_MEANT_AUTO", ())
    values = {k: None if k in zeros and v == 0 else v for k, v in values.items()}
    return from_dict(cls, values, str(config_path))


def new_run_dir(name: str, root: str | Path = "runs") -> Path:
    """Create ``root/<name>-<timestamp>`` (with a suffix if that exists already)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a usage error."""
    if name not in DEVICES:
        raise UsageError(f"--device {name!r} is not allowed; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def read_run(run_dir: str | Path, cls: type[C], device: torch.device) -> tuple[C, dict[str, Any]]:
    """A run directory's configuration and checkpoint, with clear errors for what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} does not exist")
    config = read_run_config(run_dir, cls, "evaluate")
    state = load_checkpoint(run_dir / "checkpoint.pt", map_location=device)
    total = getattr(config, "iterations", None)
    log.info("%s: trained for %s of %s iterations", run_dir, state["iteration"], total)
    return config, state


class _Stderr(logging.Handler):
    """Writes to the ``sys.stderr`` of each moment (a test's capture, say), not its first one."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


_STDERR = _Stderr()


@contextmanager
def show_messages(*names: str) -> Iterator[None]:
    """Show the info messages of the loggers ``names`` on stderr inside the block, or the
    function it decorates: a command's progress lines (which run it loaded, how far that run
    trained), which library calls leave to their caller's logging."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addHandler(_STDERR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(_STDERR)
            logger.setLevel(level)


def load_learner_state(
    learner: torch.nn.Module, state: dict[str, Any], run_dir: str | Path
) -> None:
    """Load a checkpoint's learner weights; a mismatch with the run's config is a usage error."""
    try:
        learner.load_state_dict(state["learner"])
    except (KeyError, RuntimeError) as error:
        raise UsageError(
            f"{run_dir}/checkpoint.pt does not match its config.toml: {error}"
        ) from None


def mean_and_ci95(values: Tensor) -> tuple[float, float]:
    """Mean and half-width of the normal-approximation 95% confidence interval."""
    values = values.double().flatten()
    n = values.numel()
    if n < 2:
        return float(values.mean()), math.nan
    return float(values.mean()), 1.96 * float(values.std(unbiased=True)) / math.sqrt(n)
