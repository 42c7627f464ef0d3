"""Task-level losses in the core's callback form ``loss(forward, (inputs, targets))``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
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


def loss_and_accuracy(forward: Callable[[Tensor], Tensor], batch: tuple[Tensor, Tensor]) -> Tensor:
    """Cross-entropy and accuracy of a classifier on a batch, as one vector (a query measure)."""
    inputs, labels = batch
    logits = forward(inputs)
    accuracy = (logits.argmax(-1) == labels).float().mean()
    return torch.stack([F.cross_entropy(logits, labels), accuracy])
