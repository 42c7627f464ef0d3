"""Env steps per second of a Python family's batch (Meta-World) against its single env times
the cores.

Meta-World computes observations and rewards in Python, one env at a time, so the most a
machine can give is one env's rate on each core: one env stepped alone, over the tasks of a
batch in turn (for ML10 one of each class, whose models differ in cost). Our batch
(``envs.PythonTaskEnv``) runs the sampler's copies in one group per worker process of
Gymnasium's ``AsyncVectorEnv``; the aim is at least 80% of the single env's rate times the
cores. Every measurement steps the same copies with the same tasks and random actions,
resetting at the family's horizon as the sampler does. Many envs in one process step slower
than one env alone (their models and data do not stay in the caches): 100 reach envs stepped in
turn in a plain loop run at about 78% of one env's rate here, 20 at about 93%.

    python -m benchmarks.speed_python_envs [--families metaworld-ml1-reach metaworld-ml10]
        [--copies 200] [--steps 500] [--write]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.results import write_section
from envs import PythonTaskEnv, family_class

AIM = 0.8


def single_rate(family: str, steps: int, kinds: int = 10) -> float:
    """Env steps per second of one env stepped in a Python loop, over the batch's first
    ``kinds`` tasks in turn (ML10: one of each training class), each for ``steps`` steps and a
    reset, as each copy of the batch runs; building an env and setting its task left out."""
    found = family_class(family)
    tasks = found.sample_tasks(kinds, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    env, seconds = found(), 0.0
    for task in tasks:
        env.unwrapped.set_task(float(task[0]))
        env.reset(seed=0)
        actions = rng.uniform(-1, 1, size=(steps, *env.action_space.shape))
        started = time.perf_counter()
        for t, action in enumerate(actions.astype(env.action_space.dtype), start=1):
            env.step(action)
            if t % found.horizon == 0:
                env.reset()
        env.reset()
        seconds += time.perf_counter() - started
    return kinds * steps / seconds


def batch_rate(family: str, copies: int, workers: int, steps: int) -> float:
    """Env steps per second of a batch of ``copies`` in ``workers`` processes (setup excluded)."""
    found = family_class(family)
    batch = PythonTaskEnv(found, copies, workers=workers)
    try:
        batch.set_tasks(found.sample_tasks(copies, np.random.default_rng(0)))
        batch.reset(seed=0)
        rng = np.random.default_rng(1)
        started = time.perf_counter()
        for t in range(1, steps + 1):
            batch.step(rng.uniform(-1, 1, size=(copies, *batch.single_action_space.shape)))
            if t % batch.horizon == 0:
                batch.reset()
        return copies * steps / (time.perf_counter() - started)
    finally:
        batch.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["metaworld-ml1-reach", "metaworld-ml10"])
    parser.add_argument(
        "--copies", type=int, default=200, help="the batch's copies (a meta-batch of 20 x 10)"
    )
    parser.add_argument("--steps", type=int, default=500, help="env steps of each copy")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    rows = [
        "| family | copies | single env (steps/s) | x cores | workers | batch (steps/s) "
        f"| % of single x cores | aim {AIM:.0%} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for family in args.families:
        # Best of 3 alternating rounds: this machine's speed drifts.
        single = max(single_rate(family, args.steps) for _ in range(3))
        for workers in sorted({1, cores}):
            rate = max(batch_rate(family, args.copies, workers, args.steps) for _ in range(3))
            share = rate / (single * cores)
            met = "met" if share >= AIM else "not met"
            line = (
                f"| {family} | {args.copies} | {single:,.0f} | {single * cores:,.0f} | {workers} "
                f"| {rate:,.0f} | {100 * share:.0f}% | {met if workers == cores else ''} |"
            )
            print(line, flush=True)
            rows.append(line)
    body = (
        f"Env steps per second, random actions, {args.steps} steps of every copy (resets at the "
        f"horizon included), each figure the best of 3 rounds, on {cores} cores. The single env "
        "is one env stepped in a Python loop over the batch's first 10 tasks in turn (ML10: one "
        "of each training class) for as many steps each; the batch steps its copies in one group "
        "per worker process (`AsyncVectorEnv`; 1 worker: in this process).\n\n" + "\n".join(rows)
    )
    if args.write:
        write_section("speed_python_envs (cpu)", body, __spec__.name)


if __name__ == "__main__":
    main()
