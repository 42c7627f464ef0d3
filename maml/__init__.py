"""The shared meta-learner core: differentiable inner loop and meta-objective over tasks."""

import os

# torch's OpenMP threads spin this many times waiting for work before they sleep (libgomp's
# default: 300,000): long enough for the back-to-back parallel regions of a meta-iteration, short
# enough that beside another busy process they give the core back instead of taking it from the
# thread with work (benchmarks/speed_load). libgomp reads it once, when torch loads, so it takes
# effect where the toolkit is imported first (its commands); a value already set is kept.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from maml.inner_lr import InnerLR  # noqa: E402
from maml.inner_step import Params  # noqa: E402
from maml.learner import MAML, TaskLoss  # noqa: E402
from maml.support import PerStep  # noqa: E402

__all__ = ["MAML", "InnerLR", "Params", "PerStep", "TaskLoss"]
