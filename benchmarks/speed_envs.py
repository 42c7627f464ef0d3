"""Env steps per second of the batched env against the physics limit and single envs.

The physics limit is ``mujoco.rollout`` alone advancing all copies (no observations, rewards or
Python per copy); the batched env adds observations, rewards and infos as array operations;
the single-env line steps Gymnasium-style envs one by one in a Python loop.

    python -m benchmarks.speed_envs [--copies 400 800] [--frame-skip 5] [--seconds 3] [--write]
"""

from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np
from mujoco import rollout

import envs
from benchmarks.results import write_section
from envs import BatchedTaskEnv


def rate(step, copies: int, seconds: float) -> float:
    """Env steps per second of ``step()``, which advances ``copies`` copies by one env step."""
    step()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        calls += 1
    return calls * copies / (time.perf_counter() - start)


def physics_limit(family: str, copies: int, nthread: int, seconds: float, **kwargs) -> float:
    batch = BatchedTaskEnv(family, copies, nthread=nthread, **kwargs)
    batch.reset(seed=0)
    physics = batch._physics
    pool = rollout.Rollout(nthread=nthread)
    datas = [mujoco.MjData(physics.model) for _ in range(nthread)]
    rng = np.random.default_rng(0)
    controls = rng.uniform(-1, 1, size=(copies, 1, physics.model.nu))
    states = physics.states.copy()

    def step() -> None:
        nonlocal states
        out, _ = pool.rollout(
            physics.model,
            datas,
            states,
            controls,
            nstep=physics.frame_skip,
            initial_warmstart=np.zeros((1, physics.model.nv)),
        )
        states = out[:, -1]

    result = rate(step, copies, seconds)
    pool.close()
    batch.close()
    return result


def batched(family: str, copies: int, nthread: int, seconds: float, **kwargs) -> float:
    batch = BatchedTaskEnv(family, copies, nthread=nthread, max_episode_steps=10**9, **kwargs)
    batch.set_tasks(batch.sample_tasks(copies, np.random.default_rng(0)))
    batch.reset(seed=0)
    actions = 0.3 * np.random.default_rng(1).uniform(-1, 1, size=batch.action_space.shape)
    result = rate(lambda: batch.step(actions), copies, seconds)
    batch.close()
    return result


def singles(family: str, copies: int, seconds: float, **kwargs) -> float:
    cls = envs.family_class(family)
    pool = [cls(**kwargs) for _ in range(copies)]
    for i, env in enumerate(pool):
        env.reset(seed=i)
    actions = 0.3 * np.random.default_rng(1).uniform(
        -1, 1, size=(copies, pool[0].action_space.shape[0])
    )

    def step() -> None:
        for env, action in zip(pool, actions, strict=True):
            env.step(action)

    return rate(step, copies, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["halfcheetah-vel", "ant-vel"])
    parser.add_argument("--copies", type=int, nargs="+", default=[400, 800])
    parser.add_argument(
        "--frame-skip", type=int, default=5, help="physics steps per env step (Gymnasium's 5)"
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    kwargs = {"frame_skip": args.frame_skip}
    rows = ["| family | copies | MuJoCo threads | physics limit | batched env | % of limit |"]
    rows.append("|---|---|---|---|---|---|")
    single_rows = []
    for family in args.families:
        for copies in args.copies:
            for nthread in (1, 2):
                limit = physics_limit(family, copies, nthread, args.seconds, **kwargs)
                ours = batched(family, copies, nthread, args.seconds, **kwargs)
                line = (
                    f"| {family} | {copies} | {nthread} | {limit:,.0f} | {ours:,.0f} | "
                    f"{100 * ours / limit:.0f}% |"
                )
                print(line, flush=True)
                rows.append(line)
        single = singles(family, 50, args.seconds, **kwargs)
        single_rows.append(f"- {family}: {single:,.0f} env steps/s")
        print(single_rows[-1], flush=True)
    body = (
        f"Env steps per second (one env step = {args.frame_skip} physics steps), random "
        "actions.\n\n"
        + "\n".join(rows)
        + "\n\nSingle envs of the same family stepped one after another in Python "
        "(the Gymnasium way, 50 copies):\n" + "\n".join(single_rows)
    )
    if args.write:
        name = (
            "speed_envs (cpu)"
            if args.frame_skip == 5
            else f"speed_envs (cpu, frame_skip {args.frame_skip})"
        )
        write_section(name, body, __spec__.name)


if __name__ == "__main__":
    main()
