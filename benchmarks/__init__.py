"""Speed and quality benchmarks, run on demand; figures in RESULTS.md."""

import maml  # noqa: F401  (sets the OpenMP spin before torch loads)
