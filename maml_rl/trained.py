"""A trained policy from Python: load a run, adapt the policy to a task of your own on fresh
episodes of it, and act with the adapted parameters in any env of the family."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from maml.inner_step import Params
from maml.learner import MAML
from maml.run.devices import resolve_device
from maml.run.saved import load_learner_state, read_run
from maml_rl.adapt import adapt_sampled
from maml_rl.build import build_learner, make_sampler
from maml_rl.config import TrainConfig
from maml_rl.policies import CategoricalPolicy, GaussianPolicy
from maml_rl.sampler import box_rescaling


class Trained(NamedTuple):
    """A trained run: the meta-learner, its policy (``learner.model``) and the run's config."""

    learner: MAML
    policy: nn.Module
    config: TrainConfig


def load_run(run_dir: str | Path, device: torch.device) -> tuple[MAML, TrainConfig]:
    """The trained meta-learner of a run directory, and the run's configuration."""
    config, state = read_run(run_dir, TrainConfig, device)
    learner = build_learner(config, device)
    load_learner_state(learner, state, run_dir)
    return learner, config


def load(run: str | Path, device: str | torch.device = "auto") -> Trained:
    """The trained policy of a run directory (``device``: auto, cpu or cuda), ready to adapt.

    Example, after ``python -m maml_rl.train --env navigation-2d --run-dir runs/nav``::

        import gymnasium as gym

        import envs  # registers the task families with Gymnasium
        import maml_rl

        trained = maml_rl.load("runs/nav", device="cpu")
        params = maml_rl.adapt_to_task(trained, [0.3, -0.2], steps=2)  # a goal of your own
        env = gym.make("navigation-2d", task=[0.3, -0.2])
        obs, info = env.reset(seed=0)
        action = maml_rl.act(trained.policy, params, obs, env.action_space)
        obs, reward, terminated, truncated, info = env.step(action)
    """
    device = device if isinstance(device, torch.device) else resolve_device(device)
    learner, config = load_run(run, device)
    return Trained(learner, learner.model, config)


def adaptation(
    trained: Trained,
    task: Sequence[float] | np.ndarray,
    steps: int | None = None,
    step_sizes: Sequence[float] | None = None,
    rollouts: int | None = None,
    seed: int = 0,
) -> Iterator[Params]:
    """The policy's parameters for one ``task`` before adaptation, then after each inner step.

    Step ``s`` samples ``rollouts`` fresh episodes of the task with the parameters before it
    (by default as many as the run trained with) and takes step size ``step_sizes[s]`` (the
    last repeats; by default the run's inner lr); ``steps`` defaults to the run's inner steps.
    The episodes are the run's (its horizon and frame skip), drawn from ``seed``.
    """
    learner, _, config = trained
    steps = config.inner_steps if steps is None else steps
    step_sizes = [config.inner_lr] if step_sizes is None else list(step_sizes)
    if steps < 0:
        raise ValueError(f"steps must be zero or more, got {steps}")
    if not step_sizes or min(step_sizes) <= 0:
        raise ValueError(f"step sizes must be positive, got {step_sizes}")
    yield {n: p.detach() for n, p in learner.meta_params().items()}
    if steps == 0:
        return
    one_task = dataclasses.replace(config, meta_batch=1, rollouts=rollouts or config.rollouts)
    sampler = make_sampler(one_task)
    try:
        sampler.set_tasks(np.asarray(task, dtype=np.float64)[None])
        seeds = np.random.SeedSequence(seed).generate_state(steps)
        params = None  # the meta-parameters, then the task's own (a task axis of one)
        for step in range(steps):
            acting = learner.meta_params() if params is None else params
            episodes = sampler.sample(learner.model, acting, params is not None, int(seeds[step]))
            size = step_sizes[min(step, len(step_sizes) - 1)]
            params = adapt_sampled(learner, config, episodes, params, size)
            yield {n: p[0] for n, p in params.items()}
    finally:
        sampler.close()


def adapt_to_task(
    trained: Trained,
    task: Sequence[float] | np.ndarray,
    steps: int | None = None,
    step_sizes: Sequence[float] | None = None,
    rollouts: int | None = None,
    seed: int = 0,
) -> Params:
    """The policy's parameters adapted to ``task`` by ``steps`` inner steps on fresh episodes of
    it (the defaults: see :func:`adaptation`), for :func:`act`.

    Example: ``params = adapt_to_task(maml_rl.load("runs/nav"), [0.3, -0.2], steps=2)``.
    """
    *_, params = adaptation(trained, task, steps, step_sizes, rollouts, seed)
    return params


def act(
    policy: nn.Module,
    params: Params,
    observation: Sequence[float] | np.ndarray,
    action_space: spaces.Space,
    explore: bool = False,
    generator: torch.Generator | None = None,
) -> np.ndarray | int:
    """The env action of ``policy`` with ``params`` for one ``observation``: the likeliest (a
    Gaussian policy's mean), or a draw with ``explore``; continuous actions are rescaled from the
    policy's [-1, 1] to the env's ``action_space`` and clipped to it, as in training.

    Example: ``env.step(act(trained.policy, params, obs, env.action_space))``.
    """
    first = next(iter(params.values()))
    inputs = torch.as_tensor(np.asarray(observation), dtype=first.dtype, device=first.device)
    with torch.no_grad():
        out = torch.func.functional_call(policy, params, (inputs[None],))
        if explore:
            action = policy.sample(out, generator)
        elif isinstance(policy, CategoricalPolicy):
            action = out.argmax(-1)
        elif isinstance(policy, GaussianPolicy):
            action = policy.split(out)[0]
        else:
            raise ValueError(f"no likeliest action for a {type(policy).__name__}; use explore")
    action = action[0].cpu().numpy()
    if isinstance(action_space, spaces.Discrete):
        return int(action)
    box = box_rescaling(action_space)
    if box is None:
        return action.astype(np.float64)
    center, half, low, high = box
    return np.clip(center + half * action.astype(np.float64), low, high)
