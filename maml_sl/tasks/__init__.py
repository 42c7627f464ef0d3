"""Task families of the supervised front end, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from maml.learner import TaskLoss
from maml.run.errors import UsageError
from maml_sl.config import TASK_NAMES, TrainConfig
from maml_sl.data import miniimagenet, omniglot
from maml_sl.data.miniimagenet import SPLITS, load_miniimagenet
from maml_sl.data.omniglot import load_omniglot
from maml_sl.data.overlap import check_disjoint
from maml_sl.data.splits import split_characters
from maml_sl.losses import cross_entropy, loss_and_accuracy, mse
from maml_sl.models import conv4, mlp
from maml_sl.plots import episode_figure, sinusoid_figure
from maml_sl.tasks.fewshot import FewShotTasks
from maml_sl.tasks.sinusoid import SinusoidTasks


@dataclass(frozen=True)
class ImageFormat:
    """How a task's images are read: square size, PIL mode, and whether to invert (Omniglot)."""

    size: int
    mode: str
    invert: bool = False


@dataclass
class TaskSetup:
    """What the trainer needs of a task family: tasks, a model, the loss, and what to report."""

    sampler: Any  # .sample(n_tasks, shots, query, generator) -> (support, query), meta-training
    model: nn.Module
    loss: TaskLoss
    val_sampler: Any  # held-out tasks for meta-validation
    test_sampler: Any  # meta-test tasks
    val_query: int  # query examples per task (per class) when validating
    measure: TaskLoss | None = None  # query measures reported, a vector; None: the loss
    measure_names: tuple[str, ...] = ("loss",)
    figure: Callable[..., Any] | None = None
    image: ImageFormat | None = None  # how to read a user's images (image tasks)
    # Image tasks: how many characters or classes each split holds, and which word counts them.
    split: dict[str, Any] = field(default_factory=dict)

    def describe_split(self) -> str:
        """``122 train / 14 val / 106 test characters``, say (empty without a split)."""
        if not self.split:
            return ""
        counts = " / ".join(f"{n} {name}" for name, n in self.split.items() if name != "unit")
        return f"{counts} {self.split['unit']}"


def make_task(config: TrainConfig, device: torch.device) -> TaskSetup:
    """Build the samplers, model and loss of ``config.task``."""
    if config.task == "sinusoid":
        tasks = SinusoidTasks(device=device)
        model = mlp(1, 1, hidden=config.hidden, depth=config.depth)
        return TaskSetup(tasks, model, mse, tasks, tasks, 100, figure=sinusoid_figure)
    if config.task == "omniglot":
        return _omniglot(config, device)
    if config.task == "miniimagenet":
        return _miniimagenet(config, device)
    raise UsageError(f"task {config.task!r} is unknown; allowed: {', '.join(TASK_NAMES)}")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _omniglot(config: TrainConfig, device: torch.device) -> TaskSetup:
    if not config.data:
        raise UsageError("--task omniglot needs --data PATH (an Omniglot folder or zip)")
    characters = load_omniglot(config.data, cache_dir=config.cache_dir or None)
    parts = split_characters(
        characters, config.split_seed, _names(config.train_on), _names(config.test_on)
    )
    model = conv4(
        1, config.ways, filters=config.filters, pool="stride", image_size=omniglot.IMAGE_SIZE
    )
    return _image_task(
        config,
        device,
        parts,
        model,
        ImageFormat(omniglot.IMAGE_SIZE, "L", invert=True),
        "characters",
        True,
    )


def _miniimagenet(config: TrainConfig, device: torch.device) -> TaskSetup:
    if not config.data:
        raise UsageError("--task miniimagenet needs --data PATH (images/ and the split CSVs)")
    if config.train_on or config.test_on:
        raise UsageError("--train-on/--test-on are for Omniglot; MiniImageNet has fixed splits")
    cache = config.cache_dir or None
    parts = {split: load_miniimagenet(config.data, split, cache_dir=cache) for split in SPLITS}
    check_disjoint(parts)
    model = conv4(
        3, config.ways, filters=config.filters, pool="max", image_size=miniimagenet.IMAGE_SIZE
    )
    return _image_task(
        config, device, parts, model, ImageFormat(miniimagenet.IMAGE_SIZE, "RGB"), "classes", False
    )


def _image_task(
    config, device, parts, model, image: ImageFormat, unit: str, rotations: bool
) -> TaskSetup:
    """N-way K-shot classification on the train/val/test splits ``parts`` of what ``unit``
    names (characters, classes); with ``rotations`` each one rotated by 0/90/180/270 degrees is
    a class of its own (Omniglot, as in the MAML paper)."""
    samplers = {}
    for name, part in parts.items():
        if not part.names:
            raise UsageError(f"the {name} split of {config.data} is empty; give more classes")
        tasks = FewShotTasks(
            part.images.to(device),
            part.counts,
            config.ways,
            rotations,
            name=f"{name} split",
            shift=config.shift if name == "train" else 0,
        )
        tasks.check_sizes(config.shots, config.query, f"the {name} split of {config.data}")
        samplers[name] = tasks
    return TaskSetup(
        samplers["train"],
        model,
        cross_entropy,
        samplers["val"],
        samplers["test"],
        config.query,
        measure=loss_and_accuracy,
        measure_names=("loss", "accuracy"),
        figure=episode_figure,
        image=image,
        split={"unit": unit, **{name: len(part.names) for name, part in parts.items()}},
    )
