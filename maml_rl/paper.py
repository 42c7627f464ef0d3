"""``python -m maml_rl.paper``: the tools that compare with the MAML paper's RL results.

Beside ``python -m maml_rl.evaluate`` (the paper's test protocol on new tasks), these reproduce
the paper's own comparisons: the "random" baseline (a freshly initialised policy adapted by the
same steps, ``--untrained``), the 40 test tasks of its figure (``--paper-tasks``), its authors'
test-time sampler (a step budget per task, ``--budget``), and two runs paired on the same tasks
and episodes (``--against``). The TRPO curvature probe is ``python -m benchmarks.trpo_curvature``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn

from envs import family_class
from maml.inner_step import Params
from maml.learner import MAML
from maml.run.config import resolve_config
from maml.run.devices import resolve_device
from maml.run.errors import UsageError, run_cli, show_messages
from maml.run.presets import read_preset
from maml.run.threads import fixed_threads
from maml_rl.build import build_learner
from maml_rl.config import INITS, TrainConfig
from maml_rl.episodes import Episodes
from maml_rl.evaluate import (
    TEST_PROTOCOLS,
    add_protocol_arguments,
    check_protocol_arguments,
    evaluate_on,
    format_returns,
    new_tasks,
    report,
)
from maml_rl.sampler import Sampler, masked_episodes, successes_of
from maml_rl.trained import load_run


def untrained_learner(
    env: str, init: str | None, seed: int, device: torch.device
) -> tuple[MAML, TrainConfig]:
    """A freshly initialised meta-learner of ``env``'s preset: the MAML paper's "random" baseline
    (its test scripts adapt such a policy by the same steps, with larger step sizes)."""
    if env not in TEST_PROTOCOLS:
        raise UsageError(f"--untrained {env!r} is unknown; allowed: {', '.join(TEST_PROTOCOLS)}")
    flags = {"seed": seed} if init is None else {"seed": seed, "init": init}
    config = resolve_config(TrainConfig, flags, None, read_preset(env), f"preset {env}")
    return build_learner(config, device), config


PAPER_TASKS = 40


def paper_tasks(env: str) -> np.ndarray:
    """The 40 test tasks of the MAML paper's figure for ``env`` (its authors' test script's
    goals), as this toolkit's task arrays: (40, task_dim)."""
    protocol = TEST_PROTOCOLS[env]
    draw = np.random.RandomState(protocol.goal_seed)  # the scripts' global legacy generator
    size = (PAPER_TASKS, family_class(env).task_dim)
    goals = draw.uniform(protocol.goal_low, protocol.goal_high, size=size)
    if protocol.backward_below is None:
        return goals
    return np.where(goals < protocol.backward_below, -1.0, 1.0)


def sample_lockstep(
    sampler: Sampler, policy: nn.Module, params: Params, per_task: bool, seed: int, budget: int
) -> Episodes:
    """Episodes as the MAML authors' rllab sampler gathered them at test time: a step budget
    per task.

    rllab's ``VectorizedSampler`` (``cbfinn/maml_rl``, ``sandbox/rocky/tf/samplers/
    vectorized_sampler.py``) steps its envs in lockstep, restarts an env at once when its
    episode ends, and stops after the time step at which the completed episodes hold at
    least ``budget`` steps; the episodes still running then are dropped. Here each task's
    ``rollouts`` copies are its lanes and each task stops at its own such time step. Where
    episodes end early (a fallen Ant) that gives more episodes than lanes, and favours short
    ones: a lane's long episode is the one most often cut off. Returns (tasks, E, horizon,
    ...), E the most episodes any task kept, the others padded with masked-out episodes.
    """
    if budget < 1:
        raise ValueError(f"budget must be positive, got {budget}")
    tasks, rollouts, horizon = sampler.meta_batch, sampler.rollouts, sampler.horizon
    lanes = tasks * rollouts
    outputs_of, sample = sampler.acting(policy, params, per_task)
    generator = torch.Generator().manual_seed(seed)
    columns: dict[str, list[Tensor]] = {k: [] for k in ("obs", "act", "rew", "out", "success")}
    task_of = np.arange(lanes) // rollouts
    elapsed = np.zeros(lanes, dtype=np.int64)  # steps into each lane's running episode
    completed = np.zeros(tasks, dtype=np.int64)  # steps of each task's completed episodes
    stop = np.full(tasks, -1)  # the time step at which each task's budget was met
    ends: list[tuple[int, int, int]] = []  # (lane, last time step, length) of kept episodes
    first = sampler.share.start * rollouts
    with fixed_threads(sampler.threads), torch.no_grad():
        obs, _ = sampler.env.reset(seed=[seed + first + i for i in range(lanes)])
        t = 0
        while (stop < 0).any():
            observations = torch.as_tensor(obs, dtype=torch.float32).view(tasks, rollouts, -1)
            outputs = outputs_of(observations)
            actions = sample(outputs, generator)
            obs, rewards, terminated, _, info = sampler.env.step(sampler.env_actions(actions))
            columns["success"].append(successes_of(info, np.ones(lanes, dtype=bool)))
            columns["obs"].append(observations.reshape(lanes, -1))
            columns["act"].append(actions.reshape(lanes, -1))
            columns["out"].append(outputs.reshape(lanes, -1))
            columns["rew"].append(torch.as_tensor(rewards, dtype=torch.float32))
            elapsed += 1
            ended = terminated | (elapsed >= horizon)
            for lane in np.flatnonzero(ended & (stop[task_of] < 0)):
                ends.append((lane, t, elapsed[lane]))
                completed[task_of[lane]] += elapsed[lane]
            stop[(stop < 0) & (completed >= budget)] = t
            if ended.any():
                obs, _ = sampler.env.reset(options={"reset_mask": ended})
                elapsed[ended] = 0
            t += 1
    sampler.steps_taken += lanes * t
    return _episodes_of(columns, ends, task_of, tasks, horizon)


def _episodes_of(
    columns: dict[str, list[Tensor]],
    ends: list[tuple[int, int, int]],
    task_of: np.ndarray,
    tasks: int,
    horizon: int,
) -> Episodes:
    """The episodes (lane, last time step, length) cut out of time-major columns, grouped by
    task in the order they ended, padded to the most any task has: (tasks, E, horizon, ...)."""
    per_task: list[list[tuple[int, int, int]]] = [[] for _ in range(tasks)]
    for end in ends:
        per_task[task_of[end[0]]].append(end)
    most = max(len(kept) for kept in per_task)
    lane = torch.zeros(tasks, most, dtype=torch.long)
    start = torch.zeros(tasks, most, dtype=torch.long)
    length = torch.zeros(tasks, most, dtype=torch.long)
    for task, kept in enumerate(per_task):
        for k, (index, last, steps) in enumerate(kept):
            lane[task, k], start[task, k], length[task, k] = int(index), last - steps + 1, steps
    step = torch.arange(horizon)
    mask = step < length.unsqueeze(-1)  # (tasks, E, horizon)
    time = (start.unsqueeze(-1) + step).clamp(max=len(columns["obs"]) - 1)
    lanes = lane.unsqueeze(-1).expand_as(time)
    return masked_episodes(lambda key: torch.stack(columns[key])[time, lanes], mask)


@show_messages("maml.run.saved")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maml_rl.paper",
        description="Compare with the MAML paper's RL results: a run or the paper's random "
        "baseline, on new tasks or the paper's 40, sampled as evaluate does or by the authors' "
        "step budget, alone or paired with another run.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "run", nargs="?", help="run directory (holds config.toml and checkpoint.pt)"
    )
    parser.add_argument(
        "--untrained",
        metavar="ENV",
        help="instead of a run, a freshly initialised policy of ENV's preset (the MAML paper's "
        "'random' baseline; its test scripts adapted it with --step-sizes 1.0 0.5)",
    )
    parser.add_argument(
        "--init", choices=INITS, help="with --untrained: the initialisation (default: the preset's)"
    )
    parser.add_argument(
        "--init-seed",
        type=int,
        default=0,
        help="with --untrained: the initialisation's seed (default: %(default)s)",
    )
    parser.add_argument(
        "--paper-tasks",
        action="store_true",
        help="instead of new test tasks, the 40 of the MAML paper's figure (the goals its "
        "authors' test script drew), for a task-by-task comparison with their result files",
    )
    parser.add_argument(
        "--budget",
        type=int,
        metavar="STEPS",
        help="sample as the MAML authors' rllab sampler did at test time: --rollouts lanes per "
        "task run episodes back to back until STEPS env steps per task and step; returns are "
        "averaged over the episodes completed by then (their test scripts: 4000)",
    )
    parser.add_argument(
        "--against",
        metavar="RUN",
        help="also evaluate RUN (the same family) on the same test tasks with the same seeds and "
        "settings (its own default step sizes unless --step-sizes), and report this policy's "
        "return minus RUN's per step with a paired 95%% interval over the tasks",
    )
    add_protocol_arguments(parser)
    args = parser.parse_args(argv)
    check_protocol_arguments(args)
    if args.budget is not None and args.budget < 1:
        raise UsageError(f"--budget must be positive, got {args.budget}")
    if (args.run is None) == (args.untrained is None):
        raise UsageError("give a run directory or --untrained ENV (one of them)")
    device = resolve_device(args.device)
    if args.run is None:
        learner, config = untrained_learner(args.untrained, args.init, args.init_seed, device)
    else:
        learner, config = load_run(args.run, device)
    other = None
    if args.against is not None:
        other = load_run(args.against, device)
        if other[1].env != config.env:
            raise UsageError(
                f"--against {args.against} is a {other[1].env} run; this one is {config.env}"
            )
    if args.paper_tasks:
        if args.tasks != PAPER_TASKS:
            raise UsageError(f"--paper-tasks are the paper's 40; drop --tasks {args.tasks}")
        task_array = paper_tasks(config.env)
    else:
        task_array = new_tasks(config.env, args.tasks, args.seed)
    sample = None if args.budget is None else partial(sample_lockstep, budget=args.budget)
    which = f"the MAML paper's {PAPER_TASKS}" if args.paper_tasks else f"{args.tasks} new"
    outcomes = evaluate_on(learner, config, args, task_array, sample)
    report(outcomes, config, which, args.plot)
    if other is not None:
        against = evaluate_on(*other, args, task_array, sample)
        report(against, other[1], f"{args.against}: {which}", None)
        paired = f"this policy minus {args.against} (mean ± 95% interval over tasks, paired)"
        print(format_returns(outcomes.returns - against.returns, paired))
    return 0


if __name__ == "__main__":
    run_cli(main)
