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


def conv4(
    in_channels: int,
    ways: int,
    filters: int = 64,
    pool: str = "stride",
    image_size: int = 28,
    batch_norm: bool = True,
) -> nn.Sequential:
    """The MAML paper's 4-block convolutional classifier.

    Each block: 3x3 conv with ``filters`` channels, BatchNorm with batch statistics (no running
    averages, as in MAML), ReLU, then 2x2 max-pooling (``pool="max"``, MiniImageNet) or a stride-2
    convolution (``pool="stride"``, Omniglot, whose features are then averaged over space).
    """
    if pool not in ("stride", "max"):
        raise ValueError(f"pool {pool!r} is unknown; allowed: stride, max")
    layers: list[nn.Module] = []
    channels, size = in_channels, image_size
    for _ in range(4):
        stride = 2 if pool == "stride" else 1
        layers.append(nn.Conv2d(channels, filters, 3, stride=stride, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(filters, track_running_stats=False))
        layers.append(nn.ReLU())
        if pool == "max":
            layers.append(nn.MaxPool2d(2))
        channels, size = filters, (size + 1) // 2 if pool == "stride" else size // 2
    if pool == "stride":
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(filters, ways)]
    else:
        layers += [nn.Flatten(), nn.Linear(filters * size * size, ways)]
    return nn.Sequential(*layers)
