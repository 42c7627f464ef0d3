"""A trained run from Python: its meta-learner, model, configuration and task family."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from torch import nn

from maml.learner import MAML
from maml.run.devices import resolve_device
from maml.run.saved import load_learner_state, read_run
from maml_sl.build import build_learner
from maml_sl.config import TrainConfig
from maml_sl.tasks import TaskSetup


class Trained(NamedTuple):
    """A trained run: the meta-learner, its model (``learner.model``), the run's configuration
    and its task family (samplers of the meta-test split, the loss, the measures)."""

    learner: MAML
    model: nn.Module
    config: TrainConfig
    setup: TaskSetup


def load_run(run_dir: str | Path, device: str = "auto") -> tuple[MAML, TaskSetup, TrainConfig]:
    """The trained meta-learner of a run directory, its task family and its configuration."""
    torch_device = resolve_device(device)
    config, state = read_run(run_dir, TrainConfig, torch_device)
    learner, setup = build_learner(config, torch_device)
    load_learner_state(learner, state, run_dir)
    return learner, setup, config


def load(run: str | Path, device: str = "auto") -> Trained:
    """The trained model of a run directory (``device``: auto, cpu or cuda), ready to adapt.

    Example, after ``python -m maml_sl.train --task sinusoid --run-dir runs/sine``::

        import torch
        import maml_sl

        learner, model, config, setup = maml_sl.load("runs/sine", device="cpu")
        x = torch.linspace(-5, 5, 10).view(1, -1, 1)  # a new task's 10 examples (one task)
        y = 2.0 * torch.sin(x + 1.0)
        adapted = learner.adapt((x, y), steps=5)  # each task's parameters: a leading task axis
        forward = learner.functional({name: p[0] for name, p in adapted.items()})
        with torch.no_grad():
            predictions = forward(torch.linspace(-5, 5, 100).view(-1, 1))
    """
    learner, setup, config = load_run(run, device)
    return Trained(learner, learner.model, config, setup)
