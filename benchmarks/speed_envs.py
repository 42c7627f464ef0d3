"""Env steps per second of the batched env against the physics limit and single envs.

All three run the same workload: the same copies from the same resets, fed the same random
actions for the same number of steps (episodes end and restart at the same steps). The physics
limit replays, through ``mujoco.rollout`` alone, exactly the calls the batched env made (its
states, controls and step counts, resets included), so it is what the batched env would take
if observations, rewards and resets cost nothing; the share of the env's time spent on the
family's derived quantities (the rllab Ant's sensors after one more ``mj_forward`` per copy,
on the same threads; the HalfCheetah's centre of mass) is timed inside it. The single-env lines
step ours and Gymnasium's own env of the same robot one by one in a Python loop, at the preset's
frame skip and at 5.

    python -m benchmarks.speed_envs [--copies 400 800] [--frame-skip 1] [--steps 400] [--write]
"""

from __future__ import annotations

import argparse
import time
import warnings

import mujoco
import numpy as np
from mujoco import rollout

import envs
from benchmarks.results import write_section
from envs import BatchedTaskEnv
from envs._mujoco import python_warnings
from maml.run.presets import read_preset


def action_sequence(space, copies: int, steps: int) -> np.ndarray:
    """(steps, copies, action_dim) uniform random actions in the env's box, seeded."""
    rng = np.random.default_rng(1)
    low, high = space.low, space.high
    return rng.uniform(low, high, size=(steps, copies, *low.shape))


def batched_and_limit(
    family: str, copies: int, nthread: int, steps: int, **kwargs
) -> tuple[float, float, float, float]:
    """Env steps/s of the batched env and of ``mujoco.rollout`` replaying its very physics
    calls, then its physics and derived quantities' calls (for the rllab Ant one ``mj_forward``
    per copy after the physics, as rllab's ``model.forward()``; the physics alone otherwise),
    and the share of the env's time spent on the family's derived quantities."""
    batch = BatchedTaskEnv(family, copies, nthread=nthread, **kwargs)
    batch.set_tasks(batch.sample_tasks(copies, np.random.default_rng(0)))
    actions = action_sequence(batch.single_action_space, copies, steps)
    physics = batch._physics
    calls = []
    original = physics.pool.rollout

    def recording(model, datas, states, controls, **kw):
        calls.append((model, states.copy(), controls.copy(), kw))
        return original(model, datas, states, controls, **kw)

    derive_seconds = 0.0
    derive = physics.derive

    def timed_derive(states, ctrls):
        nonlocal derive_seconds
        start = time.perf_counter()
        result = derive(states, ctrls)
        derive_seconds += time.perf_counter() - start
        return result

    batch.reset(seed=0)
    batch.step(actions[0])  # warm-up
    physics.pool.rollout = recording
    if derive is not None:
        physics.derive = timed_derive
    calls.clear()
    start = time.perf_counter()
    for step in range(steps):
        batch.step(actions[step])
    env_seconds = time.perf_counter() - start
    physics.pool.rollout = original
    physics.derive = derive
    pool = rollout.Rollout(nthread=nthread)
    datas = {id(m): [mujoco.MjData(m) for _ in range(nthread)] for m, *_ in calls}
    limit_seconds = {}
    passes = [("physics", {id(physics.model)}), ("mdp", set(datas))]
    for name, replayed in passes[: 1 + (len(datas) > 1)]:
        timed = [call for call in calls if id(call[0]) in replayed]
        model, states, controls, kw = timed[0]
        pool.rollout(model, datas[id(model)], states, controls, **kw)  # warm-up
        start = time.perf_counter()
        for model, states, controls, kw in timed:
            pool.rollout(model, datas[id(model)], states, controls, **kw)
        limit_seconds[name] = time.perf_counter() - start
    limit_seconds.setdefault("mdp", limit_seconds["physics"])  # the physics is all it steps
    pool.close()
    batch.close()
    rates = [steps * copies / t for t in (env_seconds, *limit_seconds.values())]
    return *rates, derive_seconds / env_seconds


def singles(family: str, copies: int, steps: int, rounds: int = 3, **kwargs) -> dict[str, float]:
    """Env steps/s of single envs stepped in a Python loop, ours and Gymnasium's own env of the
    same robot (same frame skip, actions and resets), in alternating rounds; the best round."""
    ours = envs.family_class(family)
    theirs = gymnasium_env(ours)
    best = {ours.__name__: 0.0, theirs.__name__: 0.0}
    for _ in range(rounds):
        for cls in (ours, theirs):
            rate = single_loop(cls, ours.horizon, copies, steps, **kwargs)
            best[cls.__name__] = max(best[cls.__name__], rate)
    return best


def gymnasium_env(cls: type) -> type:
    """The Gymnasium MuJoCo env a family is built on (HalfCheetahEnv, AntEnv)."""
    for base in cls.__mro__:
        if base.__module__.startswith("gymnasium.envs.mujoco.") and base.__name__ != "MujocoEnv":
            return base
    raise ValueError(f"{cls.__name__} is not built on a Gymnasium MuJoCo env")


def single_loop(cls: type, horizon: int, copies: int, steps: int, **kwargs) -> float:
    # Gymnasium's own HalfCheetah and Ant make MuJoCo 4 log a deprecation at every construction:
    # routed to Python's warnings here and dropped, so the benchmark leaves no MUJOCO_LOG.TXT.
    with python_warnings(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="MuJoCo: .*settotalmass")
        pool = [cls(**kwargs) for _ in range(copies)]
    for i, env in enumerate(pool):
        env.reset(seed=i)
    actions = action_sequence(pool[0].action_space, copies, steps)
    episode_steps = np.zeros(copies, dtype=int)
    start = time.perf_counter()
    for step in range(steps):
        for i, env in enumerate(pool):
            _, _, terminated, _, _ = env.step(actions[step, i])
            episode_steps[i] += 1
            if terminated or episode_steps[i] >= horizon:
                env.reset()
                episode_steps[i] = 0
    seconds = time.perf_counter() - start
    for env in pool:
        env.close()
    return steps * copies / seconds


def preset_frame_skip(family: str) -> int:
    """The physics steps per env step that the family's training preset uses."""
    preset = read_preset(family)
    return preset.get("frame_skip") or envs.family_class(family)().frame_skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["halfcheetah-vel", "ant-vel"])
    parser.add_argument("--copies", type=int, nargs="+", default=[400, 800])
    parser.add_argument(
        "--frame-skip",
        type=int,
        default=0,
        help="physics steps per env step; 0 takes each family's preset (HalfCheetah 1, Ant 5)",
    )
    parser.add_argument("--steps", type=int, default=400, help="env steps per measurement")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    rows = [
        "| family | physics steps per env step | copies | MuJoCo threads | physics limit "
        "| batched env | % of limit | % of the limit with the MDP's forward "
        "| derived quantities, % of the env's time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    single_rows = []
    for family in args.families:
        frame_skip = args.frame_skip or preset_frame_skip(family)
        for copies in args.copies:
            for nthread in (1, 2):
                # Best of 3 rounds, each the env then its limits (this machine's speed drifts).
                rounds = [
                    batched_and_limit(family, copies, nthread, args.steps, frame_skip=frame_skip)
                    for _ in range(3)
                ]
                ours, _, _, derived = max(rounds)
                limit, with_forward = (max(r[i] for r in rounds) for i in (1, 2))
                line = (
                    f"| {family} | {frame_skip} | {copies} | {nthread} | {limit:,.0f} | "
                    f"{ours:,.0f} | {100 * ours / limit:.0f}% | "
                    f"{100 * ours / with_forward:.0f}% | {100 * derived:.0f}% |"
                )
                print(line, flush=True)
                rows.append(line)
        # The preset's frame skip, and Gymnasium's default of 5 (where physics weighs more).
        for skip in sorted({frame_skip, 5}):
            rates = singles(family, 50, max(1, args.steps // 8), frame_skip=skip)
            (_, mine), (gym_name, theirs) = rates.items()
            single_rows.append(
                f"| {family} | {skip} | {mine:,.0f} | {gym_name} {theirs:,.0f} "
                f"| {theirs / mine:.2f}x |"
            )
            print(single_rows[-1], flush=True)
    body = (
        f"Env steps per second over {args.steps} env steps of every copy, random actions in the "
        "action box, the family's episode length (episodes end and restart inside the run); "
        "each figure the best of 3 rounds (the env, then its limits). "
        "The physics limit is `mujoco.rollout` replaying the env's physics calls; the limit "
        "with the MDP's forward also replays the calls that compute the derived quantities "
        "(the rllab Ant's one `mj_forward` per copy after each step, which rllab's env made "
        "too: `model.forward()`), so it is what the env would take if its Python parts cost "
        "nothing.\n\n"
        + "\n".join(rows)
        + "\n\nSingle envs stepped one after another in Python (the Gymnasium way, 50 copies, "
        f"{max(1, args.steps // 8)} steps, best of 3 alternating rounds), ours against "
        "Gymnasium's own env of the same robot at the same frame skip (its own model, "
        "observation and reward: for the Ant, Gymnasium's Ant-v5, not the rllab model):\n\n"
        "| family | physics steps per env step | ours (env steps/s) | Gymnasium's | "
        "our time per step / Gymnasium's |\n|---|---|---|---|---|\n" + "\n".join(single_rows)
    )
    if args.write:
        write_section("speed_envs (cpu)", body, __spec__.name)


if __name__ == "__main__":
    main()
