"""The meta-learner and task family of a supervised config, for training, evaluation and
adaptation alike."""

from __future__ import annotations

import torch

from maml.learner import MAML
from maml_sl.config import TrainConfig
from maml_sl.tasks import TaskSetup, make_task


def build_learner(config: TrainConfig, device: torch.device) -> tuple[MAML, TaskSetup]:
    """The task family and a freshly initialised meta-learner for ``config``."""
    torch.manual_seed(config.seed)
    setup = make_task(config, device)
    learner = MAML(
        setup.model.to(device),
        setup.loss,
        inner_steps=config.inner_steps,
        inner_lr=config.inner_lr,
        first_order=config.first_order,
        learn_inner_lr=None if config.learn_inner_lr == "none" else config.learn_inner_lr,
        path=config.path,
    )
    return learner, setup
