"""Copies of a Python task family (:mod:`envs.python_family`) stepped as one batch, many to a
process, across the cores by Gymnasium's ``AsyncVectorEnv``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from envs.checks import check_actions, check_count, check_mask, copy_seeds
from envs.python_family import PythonFamily, template


class EnvGroup(gymnasium.Env):
    """``count`` envs of a family in one process, lanes ``offset ..`` of a batch, built at first
    use. Its methods take the whole batch's arrays and act on their own slice."""

    metadata = {"autoreset_mode": AutoresetMode.DISABLED}

    def __init__(
        self,
        make: Callable[[], gymnasium.Env],
        offset: int,
        count: int,
        single_observation_space: gymnasium.Space,
        single_action_space: gymnasium.Space,
    ) -> None:
        self.make, self.lanes = make, slice(offset, offset + count)
        self.single_action_space = single_action_space
        self.count = count
        # One copy's spaces: the batch steps a group through step_lanes, never step(), and
        # Gymnasium's vector envs want their sub-envs' spaces equal.
        self.observation_space = single_observation_space
        self.action_space = single_action_space
        self.envs: list[gymnasium.Env] | None = None
        self.obs = np.zeros((count, *single_observation_space.shape))

    def _built(self) -> list[gymnasium.Env]:
        if self.envs is None:
            self.envs = [self.make() for _ in range(self.count)]
        return self.envs

    def set_tasks(self, tasks: np.ndarray) -> None:
        for env, task in zip(self._built(), tasks[self.lanes], strict=True):
            env.unwrapped.set_task(float(task[0]) if len(task) == 1 else task)

    def reset_lanes(self, seeds: list[int | None], mask: np.ndarray) -> np.ndarray:
        envs = self._built()
        for i in np.flatnonzero(mask[self.lanes]):
            self.obs[i], _ = envs[i].reset(seed=seeds[self.lanes.start + i])
        return self.obs

    def step_lanes(self, actions: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, ...]:
        rewards = np.zeros(self.count)
        ended, truncated = np.zeros((2, self.count), dtype=bool)
        success = np.full(self.count, np.nan)  # nan: the env says nothing of success
        for i in np.flatnonzero(moving[self.lanes]):
            # The batch's float64 actions in the env's own type (a discrete action's int).
            action = actions[self.lanes.start + i].astype(self.single_action_space.dtype)
            obs, reward, done, cut, info = self.envs[i].step(action)
            self.obs[i], rewards[i], ended[i], truncated[i] = obs, reward, done, cut
            if "success" in info:
                success[i] = float(info["success"])
        return self.obs, rewards, ended, truncated, success

    def step(self, action):  # the batch steps through step_lanes
        raise NotImplementedError("EnvGroup steps through step_lanes")

    def close(self) -> None:
        for env in self.envs or ():
            env.close()


class PythonTaskEnv:
    """``num_envs`` copies of a :class:`PythonFamily`, each with its own task, in ``workers``
    groups (processes of an ``AsyncVectorEnv``; one: a ``SyncVectorEnv`` here). The interface
    the sampler uses of :class:`~envs.vector.BatchedTaskEnv`: tasks, masked resets and steps.

    Episodes end at ``max_episode_steps`` (truncated) or where the env ends them; a copy whose
    episode ended stays as it is, reward 0, until it is reset (no autoreset). ``info["success"]``
    holds each copy's success at the step (nan where its env reports none).
    """

    def __init__(
        self,
        family: PythonFamily,
        num_envs: int,
        *,
        max_episode_steps: int | None = None,
        workers: int | None = None,
    ) -> None:
        self.family = family
        self.num_envs = check_count(num_envs, "num_envs")
        horizon = max_episode_steps or family.horizon
        if horizon is None:
            raise ValueError(
                f"task family {family.name!r} has no horizon (a class attribute or the Gymnasium "
                f"id's max_episode_steps): give max_episode_steps (--horizon)"
            )
        self.horizon = check_count(horizon, "max_episode_steps")
        one = template(family)
        self.single_observation_space = one.observation_space
        self.single_action_space = one.action_space
        workers = min(check_count(workers or 1, "workers"), self.num_envs)
        sizes = [len(part) for part in np.array_split(np.arange(self.num_envs), workers)]
        offsets = np.cumsum([0, *sizes[:-1]])
        groups = [
            functools.partial(
                EnvGroup,
                family.make,
                int(offset),
                size,
                self.single_observation_space,
                self.single_action_space,
            )
            for offset, size in zip(offsets, sizes, strict=True)
        ]
        if workers == 1:
            self._vector = SyncVectorEnv(groups, autoreset_mode=AutoresetMode.DISABLED)
        else:
            self._vector = AsyncVectorEnv(
                groups, shared_memory=False, autoreset_mode=AutoresetMode.DISABLED
            )
        self._tasks: np.ndarray | None = None
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._ended = np.ones(self.num_envs, dtype=bool)
        self.reports_success = False

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` training tasks of this family, (n, d)."""
        return self.family.sample_tasks(n, rng)

    def set_tasks(self, tasks) -> None:
        """Give copy i the task ``tasks[i]``; it holds until set again (resets keep it)."""
        array = np.asarray(tasks, dtype=np.float64)
        array = array.reshape(self.num_envs, -1) if array.ndim == 1 else array
        if array.ndim != 2 or len(array) != self.num_envs:
            raise ValueError(
                f"{self.family.name} tasks for {self.num_envs} copies must have shape "
                f"({self.num_envs},) or ({self.num_envs}, d); got {array.shape}"
            )
        self._vector.call("set_tasks", array)
        self._tasks = array

    def get_tasks(self) -> np.ndarray:
        return self._tasks.copy()

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all copies, or those in options["reset_mask"]; copy i of ``seed=s`` gets
        seed s + i, a list gives each its own."""
        if self._tasks is None:
            raise RuntimeError(f"{self.family.name} batch: set_tasks() before reset()")
        options = options or {}
        mask = check_mask(
            self.num_envs, options.get("reset_mask", np.ones(self.num_envs, dtype=bool))
        )
        seeds = copy_seeds(seed, self.num_envs)
        obs = np.concatenate(self._vector.call("reset_lanes", seeds, mask))
        self._steps[mask], self._ended[mask] = 0, False
        return obs, {"task": self.get_tasks()}

    def step(
        self, actions, *, active: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step the copies in ``active`` (all by default) whose episodes go on."""
        actions = check_actions(
            actions, (self.num_envs, *self.single_action_space.shape), self.family.name
        )
        active = (
            np.ones(self.num_envs, bool) if active is None else check_mask(self.num_envs, active)
        )
        moving = active & ~self._ended
        parts = self._vector.call("step_lanes", actions, moving)
        obs, rewards, terminated, truncated, success = (
            np.concatenate(p) for p in zip(*parts, strict=True)
        )
        self._steps[moving] += 1
        truncated |= moving & (self._steps >= self.horizon)
        self._ended |= terminated | truncated
        if not np.isnan(success).all():
            self.reports_success = True
        return obs, rewards, terminated, truncated, {"success": success}

    def close(self) -> None:
        self._vector.close()
