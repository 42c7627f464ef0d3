"""A run read back from its folder: its settings, its checkpoint and the learner's weights."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, TypeVar

import torch

from maml.run.checkpoint import load_checkpoint
from maml.run.config import from_dict, read_toml
from maml.run.errors import UsageError

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
    # In a run's config.toml, 0 for these means the default (auto).
    zeros = getattr(cls, "ZERO_MEANT_AUTO", ())
    values = {k: v for k, v in values.items() if not (k in zeros and v == 0)}
    for key, kept in getattr(cls, "RETIRED", {}).items():
        value = values.pop(key, kept)
        if value != kept:
            raise UsageError(
                f"{config_path}: {key} = {value!r} is not offered; "
                f"this version trains with {key} = {kept!r} only"
            )
    return from_dict(cls, values, str(config_path))


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
