"""The shared meta-learner core: differentiable inner loop and meta-objective over tasks."""

from maml import _openmp  # noqa: F401  (first: the OpenMP spin must be set before torch loads)
from maml.inner_loop import Params
from maml.inner_lr import InnerLR
from maml.learner import MAML, TaskLoss
from maml.support import PerStep

__all__ = ["MAML", "InnerLR", "Params", "PerStep", "TaskLoss"]
