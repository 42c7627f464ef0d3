"""The meta-learner and the sampler of an RL config, for training, evaluation and adaptation
alike: the settings a run resolves, the policy for its family's spaces, its batched envs."""

from __future__ import annotations

import dataclasses
import inspect

import torch

from envs import family_class, is_mujoco
from maml.learner import MAML
from maml.run import distributed
from maml.run.distributed import ONE_PROCESS, Ranks
from maml.run.errors import UsageError
from maml_rl.config import TrainConfig
from maml_rl.losses import INNER_LOSSES
from maml_rl.policies import make_policy
from maml_rl.sampler import Sampler


def check_config(config: TrainConfig) -> None:
    """Bounds the dataclass metadata cannot say."""
    try:
        family = family_class(config.env)
    except ValueError as error:
        raise UsageError(f"--env: {error}") from None
    if not 0 < config.fisher_fraction <= 1:
        raise UsageError(f"--fisher-fraction must be in (0, 1], got {config.fisher_fraction}")
    if not 0 <= config.gae_lambda <= 1:
        raise UsageError(f"--gae-lambda must be in [0, 1], got {config.gae_lambda}")
    if not 0 < config.gamma <= 1:
        raise UsageError(f"--gamma must be in (0, 1], got {config.gamma}")
    if config.frame_skip is not None and not is_mujoco(family):
        raise UsageError(
            f"--frame-skip applies to the MuJoCo families only, not {config.env}; got "
            f"{config.frame_skip} (leave it out)"
        )


def resolved(config: TrainConfig, device: torch.device) -> TrainConfig:
    """``config`` with the ``auto`` settings that decide what a run trains replaced by what it
    uses (written to config.toml): the family's horizon and frame skip. MuJoCo's threads, which
    change only the speed, are chosen at each start (:func:`mujoco_threads`, in history.toml)."""
    check_config(config)
    family = family_class(config.env)
    frame_skip = config.frame_skip
    if is_mujoco(family) and frame_skip is None:
        frame_skip = inspect.signature(family).parameters["frame_skip"].default
    horizon = config.horizon or family.horizon
    if horizon is None:
        raise UsageError(
            f"--horizon: task family {config.env} does not say its episode length (a horizon "
            f"class attribute or the Gymnasium id's max_episode_steps); give --horizon"
        )
    return dataclasses.replace(
        config,
        horizon=horizon,
        frame_skip=frame_skip,
    )


def mujoco_threads(config: TrainConfig) -> int:
    """The MuJoCo rollout threads (or a Python family's worker processes) of a sampler:
    ``--nthread``, else this rank's cores."""
    return config.nthread or distributed.cores_per_rank()


def build_learner(config: TrainConfig, device: torch.device) -> MAML:
    """A freshly initialised meta-learner around the policy for the family's spaces."""
    check_config(config)
    env = family_class(config.env)()
    torch.manual_seed(config.seed)
    policy = make_policy(
        env.observation_space,
        env.action_space,
        (config.hidden,) * config.depth,
        config.activation,
        config.init,
    ).to(device)
    env.close()
    return MAML(
        policy,
        INNER_LOSSES[config.inner_estimator](type(policy)),
        inner_steps=config.inner_steps,
        inner_lr=config.inner_lr,
        first_order=config.first_order,
    )


def build(
    config: TrainConfig, device: torch.device, ranks: Ranks = ONE_PROCESS
) -> tuple[MAML, Sampler]:
    """The sampler (of this rank's tasks) and a freshly initialised meta-learner.

    With ``sampling = "steps"`` each task gets the episodes of the authors' training sampler
    (rllab's ``VectorizedSampler`` with ``n_envs = meta_batch_size``): one env per task runs
    episodes back to back until they hold ``rollouts x horizon`` steps, and only the last,
    unfinished one is dropped; :class:`Sampler` runs them on ``rollouts`` lanes
    per task at once. (rllab stopped all tasks together once their total was reached; each task
    stopping at its own budget differs by less than an episode per task and needs no talk
    between ranks.)
    """
    return build_learner(config, device), make_sampler(config, ranks.share(config.meta_batch))


def make_sampler(config: TrainConfig, tasks: slice | None = None) -> Sampler:
    """The sampler of ``config``'s meta-batch, or of its block ``tasks`` of it: ``rollouts``
    copies of each task's env."""
    return Sampler(
        config.env,
        config.meta_batch,
        config.rollouts,
        horizon=config.horizon,
        nthread=mujoco_threads(config),
        env_kwargs=None if config.frame_skip is None else {"frame_skip": config.frame_skip},
        tasks=tasks,
        sampling=config.sampling,
    )
