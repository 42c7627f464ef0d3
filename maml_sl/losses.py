"""Task-level losses in the core's callback form ``loss(forward, (inputs, targets))``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor


def mse(forward: Callable[[Tensor], Tensor], batch: tuple[Tensor, Tensor]) -> Tensor:
    """Mean squared error of the model's predictions (regression)."""
    inputs, targets = batch
    return F.mse_loss(forward(inputs), targets)


def cross_entropy(forward: Callable[[Tensor], Tensor], batch: tuple[Tensor, Any]) -> Tensor:
    """Cross-entropy of the model's logits against integer labels (classification)."""
    inputs, labels = batch
    return F.cross_entropy(forward(inputs), labels)
