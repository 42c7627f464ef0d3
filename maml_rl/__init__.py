"""Reinforcement-learning front end of the MAML toolkit (MAML-TRPO).

``maml_rl.load(run)`` gives a trained run's learner, policy and configuration;
``adapt_to_task`` adapts the policy to a task on fresh episodes, and ``act`` acts with it.
"""

import maml  # noqa: F401  (must come before anything imports torch: it sets GOMP_SPINCOUNT)
from maml_rl.trained import Trained, act, adapt_to_task, load

__all__ = ["Trained", "act", "adapt_to_task", "load"]
