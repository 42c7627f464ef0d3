"""Which meta-objective implementation to run, vmap over tasks or a loop: right, then fast."""

from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import nn

log = logging.getLogger("maml")

MetaPath = Literal["auto", "vmap", "loop"]  # how the meta-objective runs over tasks
PATHS: tuple[str, ...] = ("auto", "vmap", "loop")

_BATCH_STAT_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)
_CONVS = (nn.modules.conv._ConvNd,)

VMAP_BATCHNORM_BUG = (
    "second-order gradients through batch-statistics normalisation are not trusted under "
    "torch.func.vmap (vmap over torch.func.grad gets them wrong: relative errors near 1e-3 in "
    "float64, benchmarks/speed_omniglot.py), so such models take the loop over tasks"
)


def uses_batch_statistics(model: nn.Module) -> bool:
    """True if a BatchNorm/InstanceNorm layer normalises with the statistics of its input batch."""
    return any(
        isinstance(m, _BATCH_STAT_NORMS) and (m.training or not m.track_running_stats)
        for m in model.modules()
    )


def tracks_running_stats_in_training(model: nn.Module) -> bool:
    """True if a normalisation layer would update running-statistics buffers in place."""
    return any(
        isinstance(m, _BATCH_STAT_NORMS) and m.training and m.track_running_stats
        for m in model.modules()
    )


def choose_path(
    model: nn.Module, requested: str, first_order: bool, device: torch.device
) -> tuple[str, str]:
    """Return ``(path, reason)``; refuse a requested path that would give a wrong gradient."""
    if requested not in PATHS:
        raise ValueError(f"meta-objective path {requested!r} is unknown; allowed: {PATHS}")
    batch_stats = uses_batch_statistics(model)
    if requested == "vmap":
        if batch_stats and not first_order:
            raise ValueError(
                "path='vmap' with second-order MAML on a model with BatchNorm: "
                f"{VMAP_BATCHNORM_BUG}. "
                "Use path='loop' or 'auto', or first_order=True."
            )
        if tracks_running_stats_in_training(model):
            raise ValueError(
                "path='vmap' cannot update BatchNorm running statistics inside vmap; build the "
                "norm layers with track_running_stats=False (batch statistics, as MAML does) "
                "or use path='loop'"
            )
        return "vmap", "requested"
    if requested == "loop":
        return "loop", "requested"
    if batch_stats and not first_order:
        return "loop", VMAP_BATCHNORM_BUG
    if tracks_running_stats_in_training(model):
        return "loop", "BatchNorm running statistics cannot be updated inside vmap"
    if device.type == "cpu" and any(isinstance(m, _CONVS) for m in model.modules()):
        return "loop", "convolutions lose their batching under vmap on the CPU (slower, measured)"
    return "vmap", "fastest measured for this model and device"


class PathChoice:
    """The path of a model for each (mode, order, device), chosen once and logged."""

    def __init__(self, model: nn.Module, requested: str) -> None:
        self.model, self.requested = model, requested
        self._chosen: dict[tuple, tuple[str, str]] = {}

    def choose(self, device: torch.device, first_order: bool) -> tuple[str, str]:
        """``(path, reason)`` for the model's mode now, ``first_order`` and ``device``."""
        key = (self.model.training, first_order, device)
        if key not in self._chosen:
            path, reason = choose_path(self.model, self.requested, first_order, device)
            log.info("meta-objective path: %s (%s)", path, reason)
            self._chosen[key] = (path, reason)
        return self._chosen[key]
