"""Models of the supervised front end."""

from __future__ import annotations

from torch import nn


def mlp(inputs: int, outputs: int, hidden: int = 40, depth: int = 2) -> nn.Sequential:
    """A ReLU MLP with ``depth`` hidden layers of ``hidden`` units (MAML's regression net: 2x40)."""
    layers: list[nn.Module] = []
    width = inputs
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)
