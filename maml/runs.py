"""Run directories, devices, and small statistics shared by the front ends."""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from maml.checkpoint import load_checkpoint
from maml.config import from_dict, read_toml
from maml.errors import UsageError

DEVICES = ("auto", "cpu", "cuda")
C = TypeVar("C")


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
    config_path = run_dir / "config.toml"
    if not config_path.is_file():
        raise UsageError(f"{run_dir} is not a run directory ({config_path} missing)")
    config = from_dict(cls, read_toml(config_path), str(config_path))
    return config, load_checkpoint(run_dir / "checkpoint.pt", map_location=device)


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


class StopRequest:
    """Turns the first Ctrl-C / SIGTERM into a request to stop at the end of the iteration."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __enter__(self) -> StopRequest:
        self._previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in self._previous:
            signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        self.signal = signum
        signal.signal(signum, self._previous[signum])  # a second one stops at once

    def honour(self, save: Callable[[], None], done: int, run_dir: Path, progress: Any) -> None:
        """If a stop was asked for: save, close the progress bar, say how to resume, and stop."""
        if self.signal is None:
            return
        save()
        progress.close()
        print(f"stopped at iteration {done}; continue with --resume {run_dir}")
        raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def log_hyperparameters(writer: Any, config: Any) -> None:
    """A run's settings as a table in TensorBoard's text tab."""
    rows = "\n".join(f"|{k}|{v}|" for k, v in dataclasses.asdict(config).items())
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + rows)
