"""A Gymnasium vector env that steps N copies of one task family at once, each with its own task."""

from __future__ import annotations

import os
from typing import Any

import mujoco
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from mujoco import rollout

from envs._mujoco import get_state, qpos_qvel
from envs.checks import (
    check_actions,
    check_count,
    check_mask,
    check_render_mode,
    check_tasks,
    copy_seeds,
)
from envs.families import family_class
from envs.mujoco_task import MujocoTaskEnv
from envs.navigation import navigation_step


class BatchedTaskEnv(VectorEnv):
    """N copies of a task family stepped together, each copy with its own task.

    MuJoCo families advance every copy's physics in one call into ``mujoco.rollout`` (a persistent
    pool of ``nthread`` C++ threads, by default one per core this process may use) and compute
    observations, rewards and infos with array operations shared with the single env, so each step
    is the single env's MDP. Navigation2D is plain numpy.

    Episodes: all copies are truncated together after ``max_episode_steps`` (the family's horizon
    by default); Ant copies that become unhealthy terminate on their own. Autoreset follows
    Gymnasium 1.x's default ``AutoresetMode.NEXT_STEP``: the step after a copy's episode ended
    resets that copy (its action is ignored, reward 0, not terminated or truncated) and returns
    its first observation. Samplers that collect fixed-horizon batches call ``reset()`` between
    batches instead.

    Seeding: ``reset(seed=s)`` gives copy i the start state of a single env reset with seed s + i.

    Exactness: the same MDP as the single env, bit for bit. ``mujoco.rollout`` starts every call
    (one env step of ``frame_skip`` physics steps) with a zero solver warm start, since it does not
    return the warm start it ends with; the single envs of this package start each env step cold
    too, so seeded episodes of the batch and of N single envs with the same actions are identical
    (tested over whole episodes). Gymnasium's own envs carry the warm start over; the difference
    is within the constraint solver's tolerance, but HalfCheetah is chaotic enough to amplify it
    to O(1) over 200 steps.

    Args:
        family: a short name (``"halfcheetah-vel"``) or a family class (``HalfCheetahVel``).
        num_envs: the number of copies.
        max_episode_steps: the horizon; the family's by default.
        nthread: MuJoCo threads (MuJoCo families; Navigation2D checks it and ignores it).
        tasks: (num_envs, task_dim) initial tasks, or (num_envs,) for a one-number task; the
            family's default task otherwise.
        **env_kwargs: passed to the single env the copies are made from (``frame_skip``, say),
            which checks them; the batch does not render, so ``render_mode`` must be None.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        family: str | type,
        num_envs: int,
        *,
        max_episode_steps: int | None = None,
        nthread: int | None = None,
        tasks: np.ndarray | None = None,
        **env_kwargs: Any,
    ) -> None:
        self.family = family_class(family)
        self._name = self.family.__name__
        self.num_envs = check_count(num_envs, "num_envs")
        horizon = self.family.horizon if max_episode_steps is None else max_episode_steps
        self.horizon = check_count(horizon, "max_episode_steps")
        if nthread is not None:
            nthread = check_count(nthread, "nthread")
        check_render_mode(
            env_kwargs.get("render_mode"), self.metadata["render_modes"], "BatchedTaskEnv"
        )
        template = self.family(**env_kwargs)
        self.single_observation_space = template.observation_space
        self.single_action_space = template.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        if isinstance(template, MujocoTaskEnv):
            self._physics: _Physics = _MujocoPhysics(template, self.num_envs, nthread)
        else:
            self._physics = _NavigationPhysics(self.num_envs)
        template.close()
        self._tasks = np.tile(template.get_task(), (self.num_envs, 1))
        if tasks is not None:
            self.set_tasks(tasks)
        self._rngs: list[np.random.Generator] | None = None
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = np.ones(self.num_envs, dtype=bool)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` tasks of this family, (n, task_dim)."""
        return self.family.sample_tasks(n, rng)

    def set_tasks(self, tasks) -> None:
        """Give copy i the task ``tasks[i]``; it holds until set again (resets keep it)."""
        self._tasks = check_tasks(tasks, self.num_envs, self.family)

    def get_tasks(self) -> np.ndarray:
        return self._tasks.copy()

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all copies, or those in options["reset_mask"]; options["tasks"] sets the tasks.

        ``seed`` (one int, or one per copy) re-seeds every copy, or with a ``reset_mask`` only
        the copies it resets (the others' seeds are ignored)."""
        options = options or {}
        if "tasks" in options:
            self.set_tasks(options["tasks"])
        if seed is not None or self._rngs is None:
            seeds = copy_seeds(seed, self.num_envs)
            if self._rngs is None or "reset_mask" not in options:
                self._rngs = [seeding.np_random(s)[0] for s in seeds]
            else:  # only the copies being reset take their new seeds
                for i in np.flatnonzero(check_mask(self.num_envs, options["reset_mask"])):
                    self._rngs[i] = seeding.np_random(seeds[i])[0]
        mask = check_mask(
            self.num_envs, options.get("reset_mask", np.ones(self.num_envs, dtype=bool))
        )
        index = np.flatnonzero(mask)
        self._physics.reset(index, self._rngs)
        self._steps[index] = 0
        self._needs_reset[index] = False
        return self._physics.observations(), {"task": self.get_tasks()}

    def step(
        self, actions, *, active: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step every copy, or only those in ``active`` (a bool mask): the others keep their
        state and step count and get reward 0, not terminated or truncated."""
        if self._rngs is None:
            raise RuntimeError(f"{self._name} batch: call reset() before step()")
        actions = check_actions(
            actions, (self.num_envs, *self.single_action_space.shape), self._name
        )
        moving = (
            np.ones(self.num_envs, dtype=bool)
            if active is None
            else check_mask(self.num_envs, active)
        )
        index = None if active is None else np.flatnonzero(moving)
        rewards, terminated, terms = self._physics.step(actions, self._tasks, index)
        restarting = np.flatnonzero(self._needs_reset & moving)
        if len(restarting):
            self._physics.reset(restarting, self._rngs)
            rewards[restarting] = 0.0
            terminated[restarting] = False
            self._steps[restarting] = 0
        stepped = moving & ~self._needs_reset
        self._steps[stepped] += 1
        truncated = stepped & (self._steps >= self.horizon)
        self._needs_reset = (self._needs_reset & ~moving) | terminated | truncated
        infos: dict[str, Any] = {"task": self.get_tasks(), "_task": np.ones(self.num_envs, bool)}
        for key, values in terms.items():
            infos[key], infos[f"_{key}"] = values, stepped.copy()
        return self._physics.observations(), rewards, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        self._physics.close()


class _Physics:
    def reset(self, index: np.ndarray, rngs: list[np.random.Generator]) -> None: ...
    def observations(self) -> np.ndarray: ...
    def step(self, actions: np.ndarray, tasks: np.ndarray, index: np.ndarray | None = None):
        """Rewards, terminations and terms of all copies, stepping those in ``index`` (all by
        default); the others keep their state and get zeros."""

    def close(self) -> None: ...


class _NavigationPhysics(_Physics):
    def __init__(self, num_envs: int) -> None:
        self.positions = np.zeros((num_envs, 2))

    def reset(self, index, rngs) -> None:
        self.positions[index] = 0.0

    def observations(self) -> np.ndarray:
        return self.positions.copy()

    def step(self, actions, tasks, index=None):
        if index is None:
            self.positions, rewards, terminated, distances = navigation_step(
                self.positions, actions, tasks
            )
            return rewards, terminated, {"distance": distances}
        self.positions = self.positions.copy()  # the last observations are views of the old
        self.positions[index], *results = navigation_step(
            self.positions[index], actions[index], tasks[index]
        )
        rewards, terminated, distances = _scattered(results, index, len(self.positions))
        return rewards, terminated, {"distance": distances}


def _scattered(values: list[np.ndarray], index: np.ndarray, n: int) -> list[np.ndarray]:
    """Arrays over the copies ``index`` as arrays over all ``n`` copies, zero elsewhere."""
    full = []
    for value in values:
        array = np.zeros((n, *value.shape[1:]), dtype=value.dtype)
        array[index] = value
        full.append(array)
    return full


def _usable_cores() -> int:
    """The cores this process may run on (its affinity: taskset, cgroups), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class _MujocoPhysics(_Physics):
    def __init__(self, env: MujocoTaskEnv, num_envs: int, nthread: int | None) -> None:
        self.family = type(env)
        self.model = env.model
        self.frame_skip, self.dt = env.frame_skip, env.dt
        self.init_qpos, self.init_qvel = env.init_qpos.copy(), env.init_qvel.copy()
        self.noise = env._reset_noise_scale
        self.nthread = _usable_cores() if nthread is None else nthread
        self.pool = rollout.Rollout(nthread=self.nthread)
        self.datas = [mujoco.MjData(self.model) for _ in range(self.nthread)]
        scratch = mujoco.MjData(self.model)
        mujoco.mj_resetData(self.model, scratch)
        self.start = get_state(self.model, scratch)  # time 0, act 0, ... as after a reset
        self.derive = self.family.derived_quantities(self.model, self.nthread, self.pool)
        self.states = np.tile(self.start, (num_envs, 1))
        self.ctrls = np.zeros((num_envs, self.model.nu))
        self._derived: np.ndarray | None = None

    def reset(self, index, rngs) -> None:
        for i in index:
            state = self.start.copy()
            qpos, qvel = qpos_qvel(self.model, state)
            qpos[:], qvel[:] = self.family.reset_qpos_qvel(
                rngs[i], self.init_qpos, self.init_qvel, self.noise
            )
            self.states[i] = state
        self.ctrls[index] = 0.0
        if self._derived is not None and self.derive is not None and len(index):
            # Only the restarted copies' quantities change (a sampler restarts a few at a time);
            # a new array, since the last step's info holds views of the old one.
            self._derived = self._derived.copy()
            self._derived[index] = self.derive(self.states[index], self.ctrls[index])

    def derived(self) -> np.ndarray | None:
        """The family's derived quantities of the current states (computed once per state)."""
        if self.derive is not None and self._derived is None:
            self._derived = self.derive(self.states, self.ctrls)
        return self._derived

    def observations(self) -> np.ndarray:
        qpos, qvel = qpos_qvel(self.model, self.states)
        return self.family.observations(qpos, qvel, self.derived())

    def _advance(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The states one env step (``frame_skip`` physics steps) after ``states``."""
        after, _ = self.pool.rollout(
            self.model,
            self.datas,
            states,
            actions[:, None, :],
            nstep=self.frame_skip,
            initial_warmstart=np.zeros((1, self.model.nv)),
        )
        return np.ascontiguousarray(after[:, -1])

    def step(self, actions, tasks, index=None):
        if index is None:
            qpos_before = qpos_qvel(self.model, self.states)[0].copy()
            self.states = self._advance(self.states, actions)
            self.ctrls = actions.copy()  # a restart zeroes rows of it: not the caller's array
            self._derived = None
            qpos_after = qpos_qvel(self.model, self.states)[0]
            return self.family.rewards(
                tasks, qpos_before, qpos_after, actions, self.derived(), self.dt
            )
        derived = self.derived()
        before, actions = self.states[index], actions[index]
        after = self._advance(before, actions)
        # New arrays: the last observations and infos may hold views of the old ones.
        self.states, self.ctrls = self.states.copy(), self.ctrls.copy()
        self.states[index], self.ctrls[index] = after, actions
        if derived is not None:
            derived = self.derive(after, actions)
            self._derived = self._derived.copy()
            self._derived[index] = derived
        rewards, terminated, terms = self.family.rewards(
            tasks[index],
            qpos_qvel(self.model, before)[0],
            qpos_qvel(self.model, after)[0],
            actions,
            derived,
            self.dt,
        )
        rewards, terminated, *values = _scattered(
            [rewards, terminated, *terms.values()], index, len(self.states)
        )
        return rewards, terminated, dict(zip(terms, values, strict=True))

    def close(self) -> None:
        self.pool.close()
