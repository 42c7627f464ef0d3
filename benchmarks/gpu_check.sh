#!/usr/bin/env bash
# The short GPU check for a session lent a CUDA machine: the CUDA tests, then the GPU rows of the
# speed benchmarks (RL meta-iteration on cuda against cpu on the same machine, Omniglot paths,
# sinusoid), written into benchmarks/RESULTS.md, which is copied to $OUT after every step; with
# the argument `distributed`, the torchrun checks of issue 19 instead. That
# machine has no network: wheels for what its image lacks (gymnasium, mujoco, higher, torchopt)
# travel in .whl/ (see the device tool's notes); without .whl/ the project is pip-installed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ -d .whl ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    $PY -m pip install -q -e '.[test,bench]'
fi
export PYTHONUNBUFFERED=1
step() {
    local limit=$1
    shift
    echo "== $* (limit ${limit}s) $(date +%T)"
    timeout "$limit" "$@"
    echo "== rc $? $(date +%T)"
    cp benchmarks/RESULTS.md "$OUT/"
}
nvidia-smi -L
$PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
if [ "${1:-}" = "distributed" ]; then
    # Issue 19's checks: the RL preset on 1, 2, 4 and 8 CPU ranks (16 cores), then Omniglot on
    # the GPU with 1 rank against 2 sharing it (data in shared/, if the checkout carries it).
    step 60 $PY -m pytest -q -p no:cacheprovider -m cuda tests
    step 300 $PY -m benchmarks.speed_distributed --workloads halfcheetah-vel --ranks 1 2 4 8 \
        --iterations 3 --write
    if [ -d shared/data/omniglot ]; then
        step 240 $PY -m benchmarks.speed_distributed --workloads omniglot-20way --ranks 1 2 \
            --device cuda --data shared/data/omniglot --iterations 5 --write
    fi
    exit 0
fi
step 60 $PY -m pytest -q -p no:cacheprovider -m cuda tests
step 150 $PY -m benchmarks.speed_rl --device cuda --iterations 3 --compare-fractions 1.0 0.2 --write
step 140 $PY -m benchmarks.speed_omniglot --device cuda --repeats 5 --write
step 40 $PY -m benchmarks.speed_sinusoid --device cuda --repeats 100 --write
step 90 $PY -m pytest -q -p no:cacheprovider -x tests
