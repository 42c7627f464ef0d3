#!/usr/bin/env bash
# The short GPU check for a session lent a CUDA machine: the test suite (CUDA tests included)
# and the sinusoid speed benchmark on the GPU, whose figures go to benchmarks/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -e '.[test,bench]'
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
python -m pytest -q
python -m benchmarks.speed_sinusoid --device cuda --repeats 100 --write
