"""Supervised front end of the MAML toolkit.

``maml_sl.load(run)`` gives a trained run's learner, model, configuration and task family.
"""

import maml  # noqa: F401  (must come before anything imports torch: it sets GOMP_SPINCOUNT)
from maml_sl.trained import Trained, load

__all__ = ["Trained", "load"]
