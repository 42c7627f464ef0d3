"""Task families of the supervised front end, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from maml.errors import UsageError
from maml.learner import TaskLoss
from maml_sl.config import TASK_NAMES, TrainConfig
from maml_sl.losses import mse
from maml_sl.models import mlp
from maml_sl.tasks.sinusoid import SinusoidTasks


@dataclass
class TaskSetup:
    """What the trainer needs of a task family: tasks, a model, the loss and an optional figure."""

    sampler: Any  # .sample(n_tasks, shots, query, generator) -> (support, query)
    model: nn.Module
    loss: TaskLoss
    figure: Callable[..., Any] | None = None


def make_task(config: TrainConfig) -> TaskSetup:
    """Build the sampler, model and loss of ``config.task``."""
    if config.task == "sinusoid":
        from maml_sl.plots import sinusoid_figure

        model = mlp(1, 1, hidden=config.hidden, depth=config.depth)
        return TaskSetup(SinusoidTasks(), model, mse, sinusoid_figure)
    raise UsageError(f"task {config.task!r} is unknown; allowed: {', '.join(TASK_NAMES)}")
