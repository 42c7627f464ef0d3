"""``python -m maml_rl.evaluate RUN``: average return on new tasks after 0, 1, 2, 3 inner steps.

The MAML paper's protocol (section 5.3) as the authors' test scripts ran it: each test task is
adapted by policy-gradient steps on fresh episodes, 4000 env steps per step (8000 for ant-dir),
with step size 0.1 for the first step and 0.05 after (0.001 for ant-dir).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from envs import family_class
from maml.inner_step import Params
from maml.learner import MAML
from maml.run.devices import DEVICES, resolve_device
from maml.run.errors import UsageError, run_cli, show_messages
from maml.run.stats import mean_and_ci95
from maml_rl.adapt import adapt_sampled
from maml_rl.build import make_sampler
from maml_rl.config import TrainConfig
from maml_rl.episodes import Episodes
from maml_rl.plots import plot_returns
from maml_rl.sampler import Sampler
from maml_rl.trained import Trained, load_run
from maml_rl.video import INSTALL, check_video, record_adaptation

TEST_SEED_OFFSET = 7_919  # test tasks come from a generator of their own
# How a sampling is taken: (sampler, policy, params, per_task, seed) -> episodes.
Sample = Callable[[Sampler, nn.Module, Params, bool, int], Episodes]


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
# as seed 2's draw of U(0.1, 0.8) against the threshold 0.4 does (cbfinn/maml_rl's
# examples/test_vpg_ant_direc.py and ant_env_rand_direc.py before that repository's commit
# 7a92e6e, as at 4d41869, the pkl's last update);
# the final script's U(0, 3) against 1.5 would give 25 / 15 and turn 5 of the 40 tasks around.
TEST_PROTOCOLS = {
    "navigation-2d": TestProtocol(4000, 0.5, "test_maml_point.py", 1, -0.5, 0.5),
    "halfcheetah-vel": TestProtocol(4000, 0.5, "test_maml_cheetah.py", 1, 0.0, 2.0),
    "halfcheetah-dir": TestProtocol(4000, 0.5, "test_maml_cheetah_direc.py", 1, 0.0, 2.0, 1.0),
    "ant-vel": TestProtocol(4000, 0.5, "test_maml_ant.py", 1, 0.0, 3.0),
    "ant-dir": TestProtocol(8000, 0.01, "test_maml_ant_direc.py", 2, 0.1, 0.8, 0.4),
}


def default_step_sizes(config: TrainConfig) -> list[float]:
    """The run's inner lr for the first step, then the fraction of it the family's test script
    took (the paper's 0.1 then 0.05; 0.1 then 0.001 for ant-dir); the inner lr for every step
    of a family without one (Meta-World's, a user's)."""
    protocol = TEST_PROTOCOLS.get(config.env)
    return [config.inner_lr, config.inner_lr * (protocol.later_step if protocol else 1.0)]


def episode_horizon(config: TrainConfig) -> int:
    """The run's episode length: its own, or its family's where it is auto."""
    return config.horizon or family_class(config.env).horizon


def default_rollouts(config: TrainConfig) -> int:
    """Episodes per task and step that fill the test script's env steps (each episode whole);
    the run's own episodes per task for a family without one (Meta-World's protocol adapts on
    10, its MAML runs' rollouts)."""
    if config.env not in TEST_PROTOCOLS:
        return config.rollouts
    return max(1, TEST_PROTOCOLS[config.env].env_steps // episode_horizon(config))


def new_tasks(env: str, tasks: int, seed: int, split: str = "test") -> np.ndarray:
    """New tasks of ``seed``: (tasks, task_dim), from a generator of their own; a family's own
    meta-test tasks where it has them (Meta-World's test set), or with ``split="train"`` its
    training tasks (validation reads those and leaves the test tasks to the test)."""
    family = family_class(env)
    draw = family.sample_tasks
    if split == "test":
        draw = getattr(family, "sample_test_tasks", draw)
    return draw(tasks, np.random.default_rng(seed + TEST_SEED_OFFSET))


class Outcomes(NamedTuple):
    """Per task after 0..steps inner steps, each (steps + 1, tasks): the mean return, the mean
    episode length and, where the family reports success, the fraction of episodes that
    succeeded (None otherwise)."""

    returns: Tensor
    lengths: Tensor
    successes: Tensor | None


def returns_after_steps(*args, **kwargs) -> Tensor:
    """Mean return per task after 0..steps inner steps: ``outcomes_after_steps``'s returns."""
    return outcomes_after_steps(*args, **kwargs).returns


def outcomes_after_steps(
    learner: MAML,
    config: TrainConfig,
    tasks: int,
    steps: int,
    step_sizes: Sequence[float],
    seed: int,
    rollouts: int | None = None,
    task_array: np.ndarray | None = None,
    block: int = 40,
    sample: Sample | None = None,
) -> Outcomes:
    """Mean return, mean episode length and success rate per task after 0..steps inner steps on
    new tasks.

    The tasks are drawn from ``seed``, or are ``task_array`` ((tasks, task_dim)) when given.
    Each step samples by the run's rule (``Sampler.sample``) with ``rollouts`` episodes per task
    (the run's by default), or by ``sample(sampler, policy, params, per_task, seed)`` when
    given. The tasks go through in blocks of ``block`` (the episodes of 200 Ant tasks under a
    budget overflowed 24 GiB at once), each block drawing the random numbers one sampler of all
    the tasks would draw: the same episodes up to the rounding of batched float sums (which an
    Ant's contacts amplify).
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
                _adapt_and_sample(learner, config, sampler, steps, step_sizes, seed, sample)
            )
        finally:
            sampler.close()
    returns, lengths, successes = zip(*blocks, strict=True)
    return Outcomes(
        torch.cat(returns, dim=1),
        torch.cat(lengths, dim=1),
        None if successes[0] is None else torch.cat(successes, dim=1),
    )


def _adapt_and_sample(
    learner: MAML,
    config: TrainConfig,
    sampler: Sampler,
    steps: int,
    step_sizes: Sequence[float],
    seed: int,
    sample: Sample | None,
) -> Outcomes:
    """``outcomes_after_steps`` for the tasks of one sampler."""
    sample = sample or Sampler.sample
    params = None  # the meta-parameters, then each task's own
    seeds = np.random.SeedSequence([seed, TEST_SEED_OFFSET]).generate_state(steps + 1)
    returns, lengths, successes = [], [], []
    for step in range(steps + 1):
        acting = learner.meta_params() if params is None else params
        episodes = sample(sampler, learner.model, acting, params is not None, int(seeds[step]))
        returns.append(episodes.returns_per_task())
        lengths.append(episodes.lengths_per_task())
        successes.append(episodes.success_per_task())
        if step == steps:
            break
        size = step_sizes[min(step, len(step_sizes) - 1)]
        params = adapt_sampled(learner, config, episodes, params, size)
    reported = torch.stack(successes) if sampler.reports_success else None
    return Outcomes(torch.stack(returns), torch.stack(lengths), reported)


def format_returns(
    returns: Tensor,
    title: str = "average return over test tasks (mean ± 95% confidence interval over tasks)",
) -> str:
    lines = [title]
    for step, values in enumerate(returns):
        mean, ci = mean_and_ci95(values)
        lines.append(f"  after {step} step{'s' if step != 1 else ''}: {mean:9.2f} ± {ci:.2f}")
    return "\n".join(lines)


def format_successes(successes: Tensor) -> str:
    """The success rate over test tasks after each step, with its 95% interval over tasks."""
    lines = ["success rate over test tasks (mean ± 95% confidence interval over tasks)"]
    for step, values in enumerate(successes):
        mean, ci = mean_and_ci95(100 * values)
        lines.append(f"  after {step} step{'s' if step != 1 else ''}: {mean:6.1f}% ± {ci:.1f}")
    return "\n".join(lines)


def format_lengths(lengths: Tensor) -> str:
    """One line of the mean episode length over test tasks after each step."""
    means = " / ".join(f"{float(values.mean()):.1f}" for values in lengths)
    return f"mean episode length after 0..{len(lengths) - 1} steps: {means}"


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """The test protocol's options, shared with ``python -m maml_rl.paper``."""
    parser.add_argument(
        "--tasks", type=int, default=40, help="new test tasks (default: %(default)s)"
    )
    parser.add_argument("--steps", type=int, default=3, help="inner steps (default: %(default)s)")
    parser.add_argument(
        "--rollouts",
        type=int,
        help="episodes per task per step (default: as many as fill the family's test script's "
        "env steps: 20 of 200 steps, 40 of 100 for navigation-2d and 40 for ant-dir); a run "
        "trained with --sampling steps samples rollouts x horizon steps per task, as in training",
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
    parser.add_argument("--plot", metavar="FILE.png", help="save returns per step as a plot")
    parser.add_argument(
        "--device", default="auto", choices=DEVICES, help="auto: CUDA when present (default: auto)"
    )


def check_protocol_arguments(args: argparse.Namespace) -> None:
    """One-line errors for the protocol's options out of range."""
    for name in ("tasks", "rollouts"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be positive, got {value}")
    if args.steps < 0:
        raise UsageError(f"--steps must be 0 or more, got {args.steps}")
    if args.step_sizes is not None and any(s <= 0 for s in args.step_sizes):
        raise UsageError(f"--step-sizes must be positive, got {args.step_sizes}")


def evaluate_on(
    learner: MAML,
    config: TrainConfig,
    args: argparse.Namespace,
    task_array: np.ndarray,
    sample: Sample | None = None,
) -> Outcomes:
    """Returns, episode lengths and successes of ``learner`` on ``task_array`` by the
    protocol's options."""
    return outcomes_after_steps(
        learner,
        config,
        len(task_array),
        args.steps,
        args.step_sizes or default_step_sizes(config),
        args.seed,
        args.rollouts or default_rollouts(config),
        task_array,
        sample=sample,
    )


def report(outcomes: Outcomes, config: TrainConfig, which: str, plot: str | None) -> None:
    """Print the returns, successes and lengths after each step; save the plot where asked."""
    print(f"{config.env}: {which} test tasks")
    print(format_returns(outcomes.returns))
    if outcomes.successes is not None:
        print(format_successes(outcomes.successes))
    print(format_lengths(outcomes.lengths))
    if plot:
        plot_returns(outcomes.returns, Path(plot), f"{config.env}, {which} test tasks")
        print(f"plot: {plot}")


@show_messages("maml.run.saved")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maml_rl.evaluate",
        description="Adapt a trained policy to new tasks and report the average return after "
        "each inner step, by the MAML authors' test protocol of the run's family. The paper's "
        "own comparisons (random baseline, its test tasks, its sampler, two runs paired): "
        "python -m maml_rl.paper.",
        allow_abbrev=False,
    )
    parser.add_argument("run", help="run directory (holds config.toml and checkpoint.pt)")
    add_protocol_arguments(parser)
    parser.add_argument(
        "--video",
        metavar="DIR",
        help="also record an episode of the first test task before adaptation and after each "
        "inner step, with the policy's likeliest actions, as DIR/<env>_task_<task>_step_<s>.mp4 "
        f"(needs moviepy: {INSTALL}; MuJoCo families without a display: MUJOCO_GL=egl)",
    )
    args = parser.parse_args(argv)
    check_protocol_arguments(args)
    learner, config = load_run(args.run, resolve_device(args.device))
    if args.video:
        check_video(config.env)
    task_array = new_tasks(config.env, args.tasks, args.seed)
    outcomes = evaluate_on(learner, config, args, task_array)
    report(outcomes, config, f"{args.tasks} new", args.plot)
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
