"""``python -m maml_rl.evaluate RUN``: average return on new tasks after 0, 1, 2, 3 inner steps.

The MAML paper's protocol (section 5.3) as the authors' test scripts ran it: each test task is
adapted by policy-gradient steps on fresh episodes, 4000 env steps per step (8000 for ant-dir),
with step size 0.1 for the first step and 0.05 after (0.001 for ant-dir).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from envs import family_class
from maml.learner import MAML
from maml.run.config import resolve_config
from maml.run.devices import DEVICES, resolve_device
from maml.run.errors import UsageError, run_cli, show_messages
from maml.run.presets import read_preset
from maml.run.stats import mean_and_ci95
from maml_rl.build import build_learner, make_sampler
from maml_rl.config import INITS, TrainConfig
from maml_rl.plots import plot_returns
from maml_rl.sampler import Sampler
from maml_rl.trained import Trained, inner_step, load_run
from maml_rl.video import INSTALL, check_video, record_adaptation

TEST_SEED_OFFSET = 7_919  # test tasks come from a generator of their own


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


@dataclass(frozen=True)
class TestProtocol:
    """How the MAML authors' test script of a family adapted (cbfinn/maml_rl, maml_examples/)."""

    env_steps: int  # per task and inner step (VPG's batch_size)
    later_step: float  # step size of the steps after the first, as a fraction of the first
    script: str
    goal_seed: int  # the script's np.random.seed before it draws its 40 goals
    goal_low: float  # goals uniform in [goal_low, goal_high] per task dimension
    goal_high: float
    backward_below: float | None = None  # direction families: goals below it run backward


# Each script's first step has `init_learning_rate` (the training inner lr) and the later ones the
# learning rate of its `tf_optimizer_args`: 0.5 of it, and 0.01 for the ant's direction.
# Goals: each script's `np.random.seed(S); np.random.uniform(...)`; the direction envs turn a goal
# into a direction by their threshold (rllab/envs/mujoco/half_cheetah_env_rand_direc.py: 1.0).
# ant-dir's figure is older than its final script: the per-task returns of
# icml/icml_antdirec_results_{random,maml}.pkl split 20 / 20 into backward and forward tasks exactly
# as seed 2's draw of U(0.1, 0.8) against the threshold 0.4 does (examples/test_vpg_ant_direc.py
# and ant_env_rand_direc.py as they were until 7a92e6e, after the pkl's last update at 4d41869);
# the final script's U(0, 3) against 1.5 would give 25 / 15 and turn 5 of the 40 tasks around.
TEST_PROTOCOLS = {
    "navigation-2d": TestProtocol(4000, 0.5, "test_maml_point.py", 1, -0.5, 0.5),
    "halfcheetah-vel": TestProtocol(4000, 0.5, "test_maml_cheetah.py", 1, 0.0, 2.0),
    "halfcheetah-dir": TestProtocol(4000, 0.5, "test_maml_cheetah_direc.py", 1, 0.0, 2.0, 1.0),
    "ant-vel": TestProtocol(4000, 0.5, "test_maml_ant.py", 1, 0.0, 3.0),
    "ant-dir": TestProtocol(8000, 0.01, "test_maml_ant_direc.py", 2, 0.1, 0.8, 0.4),
}
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


def default_step_sizes(config: TrainConfig) -> list[float]:
    """The run's inner lr for the first step, then the fraction of it the family's test script
    took (the paper's 0.1 then 0.05; 0.1 then 0.001 for ant-dir)."""
    return [config.inner_lr, config.inner_lr * TEST_PROTOCOLS[config.env].later_step]


def episode_horizon(config: TrainConfig) -> int:
    """The run's episode length: its own, or its family's where it is auto."""
    return config.horizon or family_class(config.env).horizon


def default_rollouts(config: TrainConfig) -> int:
    """Episodes per task and step that fill the test script's env steps (each episode whole)."""
    return max(1, TEST_PROTOCOLS[config.env].env_steps // episode_horizon(config))


def new_tasks(env: str, tasks: int, seed: int) -> np.ndarray:
    """The new test tasks of ``seed``: (tasks, task_dim), from a generator of their own."""
    return family_class(env).sample_tasks(tasks, np.random.default_rng(seed + TEST_SEED_OFFSET))


def returns_after_steps(*args, **kwargs) -> Tensor:
    """Mean return per task after 0..steps inner steps: ``outcomes_after_steps``'s returns."""
    return outcomes_after_steps(*args, **kwargs)[0]


def outcomes_after_steps(
    learner: MAML,
    config: TrainConfig,
    tasks: int,
    steps: int,
    step_sizes: Sequence[float],
    seed: int,
    rollouts: int | None = None,
    budget: int | None = None,
    task_array: np.ndarray | None = None,
    block: int = 40,
) -> tuple[Tensor, Tensor]:
    """Mean return and mean episode length per task after 0..steps inner steps on new tasks: two
    (steps + 1, tasks) tensors.

    The tasks are drawn from ``seed``, or are ``task_array`` ((tasks, task_dim)) when given.
    Each step samples ``rollouts`` episodes per task; with ``budget``, ``rollouts`` lanes per task
    run episodes back to back until ``budget`` env steps, as the MAML authors' rllab sampler did
    (``Sampler.sample_steps``), and the mean is over the episodes it kept. The tasks go
    through in blocks of ``block`` (the episodes of 200 Ant tasks under a budget overflowed 24 GiB
    at once), each block drawing the random numbers one sampler of all the tasks would draw: the
    same episodes up to the rounding of batched float sums (which an Ant's contacts amplify).
    """
    if block < 1:
        raise ValueError(f"block must be positive, got {block}")
    eval_config = TrainConfig(**{**config.__dict__, "meta_batch": tasks})
    if rollouts:
        eval_config.rollouts = rollouts
    if task_array is None:
        task_array = new_tasks(config.env, tasks, seed)
    elif len(task_array) != tasks:
        raise ValueError(f"task_array has {len(task_array)} tasks, expected {tasks}")
    blocks = []
    for first in range(0, tasks, block):
        share = slice(first, min(first + block, tasks))
        sampler = make_sampler(eval_config, share)
        try:
            sampler.set_tasks(task_array[share])
            blocks.append(
                _adapt_and_sample(learner, config, sampler, steps, step_sizes, seed, budget)
            )
        finally:
            sampler.close()
    returns, lengths = zip(*blocks, strict=True)
    return torch.cat(returns, dim=1), torch.cat(lengths, dim=1)


def _adapt_and_sample(
    learner: MAML,
    config: TrainConfig,
    sampler: Sampler,
    steps: int,
    step_sizes: Sequence[float],
    seed: int,
    budget: int | None,
) -> tuple[Tensor, Tensor]:
    """``outcomes_after_steps`` for the tasks of one sampler: two (steps + 1, its tasks)."""
    policy, params, per_task = learner.model, learner.meta_params(), False
    seeds = np.random.SeedSequence([seed, TEST_SEED_OFFSET]).generate_state(steps + 1)
    returns, lengths = [], []
    for step in range(steps + 1):
        if budget is None:
            episodes = sampler.sample(policy, params, per_task, seed=int(seeds[step]))
        else:
            episodes = sampler.sample_steps(policy, params, per_task, int(seeds[step]), budget)
        returns.append(episodes.returns_per_task())
        lengths.append(episodes.lengths_per_task())
        if step == steps:
            break
        size = step_sizes[min(step, len(step_sizes) - 1)]
        params = inner_step(learner, config, params, per_task, episodes, size)
        per_task = True
    return torch.stack(returns), torch.stack(lengths)


def format_returns(
    returns: Tensor,
    title: str = "average return over test tasks (mean ± 95% confidence interval over tasks)",
) -> str:
    lines = [title]
    for step, values in enumerate(returns):
        mean, ci = mean_and_ci95(values)
        lines.append(f"  after {step} step{'s' if step != 1 else ''}: {mean:9.2f} ± {ci:.2f}")
    return "\n".join(lines)


def format_lengths(lengths: Tensor) -> str:
    """One line of the mean episode length over test tasks after each step."""
    means = " / ".join(f"{float(values.mean()):.1f}" for values in lengths)
    return f"mean episode length after 0..{len(lengths) - 1} steps: {means}"


@show_messages("maml.run.saved")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maml_rl.evaluate",
        description="Adapt a trained policy to new tasks and report the average return after "
        "each inner step, by the MAML authors' test protocol of the run's family.",
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
        "--tasks", type=int, default=40, help="new test tasks (default: %(default)s)"
    )
    parser.add_argument(
        "--paper-tasks",
        action="store_true",
        help="instead of new test tasks, the 40 of the MAML paper's figure (the goals its "
        "authors' test script drew), for a task-by-task comparison with their result files",
    )
    parser.add_argument("--steps", type=int, default=3, help="inner steps (default: %(default)s)")
    parser.add_argument(
        "--rollouts",
        type=int,
        help="episodes per task per step (default: as many as fill the family's test script's "
        "env steps: 20 of 200 steps, 40 of 100 for navigation-2d and 40 for ant-dir)",
    )
    parser.add_argument(
        "--budget",
        type=int,
        metavar="STEPS",
        help="sample as the MAML authors' rllab sampler did: --rollouts lanes per task run "
        "episodes back to back until STEPS env steps per task and step; returns are averaged "
        "over the episodes completed by then (their test scripts: 4000; default: whole "
        "episodes, --rollouts of them)",
    )
    parser.add_argument(
        "--step-sizes",
        type=float,
        nargs="+",
        help="inner step size per step, the last repeats (default: the run's inner lr, then the "
        "fraction of it of the family's test script: the paper's 0.1 then 0.05, 0.001 for ant-dir)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed of the test tasks and episodes (default: %(default)s)",
    )
    parser.add_argument(
        "--against",
        metavar="RUN",
        help="also evaluate RUN (the same family) on the same test tasks with the same seeds and "
        "settings (its own default step sizes unless --step-sizes), and report this policy's "
        "return minus RUN's per step with a paired 95%% interval over the tasks",
    )
    parser.add_argument("--plot", metavar="FILE.png", help="save returns per step as a plot")
    parser.add_argument(
        "--video",
        metavar="DIR",
        help="also record an episode of the first test task before adaptation and after each "
        "inner step, with the policy's likeliest actions, as DIR/<env>_task_<task>_step_<s>.mp4 "
        f"(needs moviepy: {INSTALL}; MuJoCo families without a display: MUJOCO_GL=egl)",
    )
    parser.add_argument(
        "--device", default="auto", choices=DEVICES, help="auto: CUDA when present (default: auto)"
    )
    args = parser.parse_args(argv)
    for name in ("tasks", "rollouts", "budget"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be positive, got {value}")
    if args.steps < 0:
        raise UsageError(f"--steps must be 0 or more, got {args.steps}")
    if args.step_sizes is not None and any(s <= 0 for s in args.step_sizes):
        raise UsageError(f"--step-sizes must be positive, got {args.step_sizes}")
    if (args.run is None) == (args.untrained is None):
        raise UsageError("give a run directory or --untrained ENV (one of them)")
    device = resolve_device(args.device)
    if args.run is None:
        learner, config = untrained_learner(args.untrained, args.init, args.init_seed, device)
    else:
        learner, config = load_run(args.run, device)
    if args.video:
        check_video(config.env)
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

    def evaluate(learner: MAML, config: TrainConfig) -> tuple[Tensor, Tensor]:
        return outcomes_after_steps(
            learner,
            config,
            args.tasks,
            args.steps,
            args.step_sizes or default_step_sizes(config),
            args.seed,
            args.rollouts or default_rollouts(config),
            args.budget,
            task_array,
        )

    returns, lengths = evaluate(learner, config)
    which = f"the MAML paper's {PAPER_TASKS}" if args.paper_tasks else f"{args.tasks} new"
    print(f"{config.env}: {which} test tasks")
    print(format_returns(returns))
    print(format_lengths(lengths))
    if other is not None:
        against, other_lengths = evaluate(*other)
        print(f"{args.against}:")
        print(format_returns(against))
        print(format_lengths(other_lengths))
        paired = f"this policy minus {args.against} (mean ± 95% interval over tasks, paired)"
        print(format_returns(returns - against, paired))
    if args.plot:
        plot_returns(returns, Path(args.plot), f"{config.env}, {which} test tasks")
        print(f"plot: {args.plot}")
    if args.video:
        videos = record_adaptation(
            Trained(learner, learner.model, config),
            task_array[0],
            args.video,
            args.steps,
            args.step_sizes or default_step_sizes(config),
            args.rollouts or default_rollouts(config),
            args.seed,
        )
        for path, total in videos:
            print(f"video: {path} (return {total:.2f})")
    return 0


if __name__ == "__main__":
    run_cli(main)
