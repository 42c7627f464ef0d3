"""The shared meta-learner core: differentiable inner loop and meta-objective over tasks."""

from maml.inner_loop import Params
from maml.inner_lr import InnerLR
from maml.learner import MAML, TaskLoss
from maml.support import PerStep

__all__ = ["MAML", "InnerLR", "Params", "PerStep", "TaskLoss"]
