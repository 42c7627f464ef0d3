"""Reinforcement-learning front end of the MAML toolkit (MAML-TRPO)."""

import maml  # noqa: F401  (sets the OpenMP spin before torch loads)
