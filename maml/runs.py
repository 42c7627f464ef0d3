"""Run directories, devices, and small statistics shared by the front ends."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from maml.checkpoint import load_checkpoint
from maml.config import from_dict, read_toml
from maml.errors import UsageError

DEVICES = ("auto", "cpu", "cuda")
# A key only one front end's runs have, and what to tell a user who gave such a run to the other.
OTHER_FRONT_END = {
    "env": "an RL run: use python -m maml_rl.evaluate",
    "task": "a supervised run: use python -m maml_sl.evaluate",
}
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
    values = read_toml(config_path)
    fields = {f.name for f in dataclasses.fields(cls)}
    for key, command in OTHER_FRONT_END.items():
        if key in values and key not in fields:
            raise UsageError(f"{run_dir} is {command}")
    config = from_dict(cls, values, str(config_path))
    state = load_checkpoint(run_dir / "checkpoint.pt", map_location=device)
    total = getattr(config, "iterations", None)
    print(f"{run_dir}: trained for {state['iteration']} of {total} iterations", file=sys.stderr)
    return config, state


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
