"""Supervised front end of the MAML toolkit."""

import maml  # noqa: F401  (sets the OpenMP spin before torch loads)
