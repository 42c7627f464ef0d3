"""OpenMP's idle spin, set before torch loads its OpenMP runtime (libgomp reads it only then).

By default an idle libgomp worker spins for 300,000 rounds after every parallel region. With
more busy threads than cores (a second training run, MuJoCo's rollout threads beside the
policy) the spinning workers hold the cores that the working threads need, and a small torch
step becomes many times slower. A short spin keeps the unloaded speed and degrades gracefully
under load (measured in benchmarks/RESULTS.md, speed_load). A value the user set is kept; once
torch is imported, setting it has no effect, so it is set on importing the toolkit's packages.
"""

from __future__ import annotations

import os

SPIN_COUNT = "10000"

os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
