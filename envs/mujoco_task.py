"""What the MuJoCo task families share: a task, a quiet model, and array functions for the MDP.

A family subclasses Gymnasium's env (for its model, spaces and rendering) and this mixin, and
defines its observation and reward as functions of arrays over copies. The single env calls them
on one copy, the batched env on all of them, so both are the same MDP by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np
from mujoco import rollout

from envs._mujoco import SENSORS_OFF, get_state, load_model, qpos_qvel
from envs.checks import check_actions, check_count, check_render_mode, check_task

# What Gymnasium's MuJoCo envs take for rendering: these leave the MDP as it is.
RENDER_KWARGS = (
    "render_mode",
    "width",
    "height",
    "camera_id",
    "camera_name",
    "default_camera_config",
    "max_geom",
    "visual_options",
)


def check_env_kwargs(cls: type, frame_skip: int, kwargs: dict[str, Any]) -> int:
    """``frame_skip`` as an int, once it and the rendering arguments in ``kwargs`` are valid.

    Gymnasium's MDP arguments (reward weights, observation options, the model file, termination)
    are refused: a family's MDP is the MAML authors', and an argument taken but not honoured
    would silently train another task than asked for."""
    name = cls.__name__
    refused = sorted(set(kwargs) - set(RENDER_KWARGS))
    if refused:
        raise TypeError(
            f"{name} does not take {', '.join(refused)}: its observation, rewards and "
            f"episode ends are fixed to the MAML authors' (see its docstring). It takes task, "
            f"frame_skip and Gymnasium's rendering arguments ({', '.join(RENDER_KWARGS)})"
        )
    check_render_mode(kwargs.get("render_mode"), cls.metadata["render_modes"], name)
    for size in ("width", "height"):
        if size in kwargs:
            check_count(kwargs[size], f"{name} {size}")
    return check_count(frame_skip, f"{name} frame_skip")


class MujocoTaskEnv:
    """Mixin for a Gymnasium MuJoCo env with a task (see the module docstring)."""

    task_dim: int = 1
    # The numbers a task may hold (a direction's -1 and +1); None for any finite number.
    task_values: tuple[float, ...] | None = None
    horizon: int = 200
    default_task: tuple[float, ...] = (0.0,)

    # ---- the family's definition, over arrays with a leading copy axis ----
    @staticmethod
    def sample_tasks(n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def observations(
        cls, qpos: np.ndarray, qvel: np.ndarray, derived: np.ndarray | None
    ) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def rewards(
        cls,
        tasks: np.ndarray,
        qpos_before: np.ndarray,
        qpos_after: np.ndarray,
        actions: np.ndarray,
        derived: np.ndarray | None,
        dt: float,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(rewards, terminated, reward terms) for n copies."""
        raise NotImplementedError

    @classmethod
    def derived_quantities(
        cls, model: mujoco.MjModel, nthread: int = 1, pool: rollout.Rollout | None = None
    ) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
        """What the observation and reward need beyond qpos and qvel, as a function of full
        physics states (n, nstate) and controls (n, nu), computed from them alone (``derived``
        in ``observations`` and ``rewards``, of the state after the step); None when nothing.
        ``nthread`` and ``pool``: MuJoCo threads it may use (the batched env's)."""
        return None

    # A family whose derived quantities are MuJoCo sensors adds them here (``ForwardSensors``).
    add_sensors: Callable[[mujoco.MjSpec], None] | None = None

    @staticmethod
    def reset_qpos_qvel(
        rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray, scale: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gymnasium's v5 reset noise, in its order of draws: uniform qpos, then normal qvel."""
        qpos = init_qpos + rng.uniform(-scale, scale, size=init_qpos.shape)
        qvel = init_qvel + scale * rng.standard_normal(init_qvel.shape)
        return qpos, qvel

    @classmethod
    def configure_model(cls, model: mujoco.MjModel) -> None:
        """Change the compiled model in place (options, contact parameters); none by default."""

    # ---- the single env ----
    def _setup_task(self, task) -> None:
        self.set_task(self.default_task if task is None else task)

    def set_task(self, task) -> None:
        """Set the task (one number alone for a one-number task); it holds for every episode
        until set again."""
        self._task = check_task(task, type(self))

    def get_task(self) -> np.ndarray:
        return self._task.copy()

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = load_model(self.fullpath, self.add_sensors)
        if model.nsensor:  # read after a step by ``derived_quantities``, not in every physics step
            model.opt.disableflags |= SENSORS_OFF
        self.configure_model(model)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        self._derive = self.derived_quantities(model)
        return model, mujoco.MjData(model)

    def _derived(self, states: np.ndarray) -> np.ndarray | None:
        return None if self._derive is None else self._derive(states, self.data.ctrl[None])

    def _get_obs(self) -> np.ndarray:
        states = get_state(self.model, self.data)[None]
        qpos, qvel = qpos_qvel(self.model, states)
        return self.observations(qpos, qvel, self._derived(states))[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if options and "task" in options:
            self.set_task(options["task"])
        observation, info = super().reset(seed=seed, options=options)
        return observation, {**info, "task": self.get_task()}

    def reset_model(self) -> np.ndarray:
        qpos, qvel = self.reset_qpos_qvel(
            self.np_random, self.init_qpos, self.init_qvel, self._reset_noise_scale
        )
        self.set_state(qpos, qvel)
        return self._get_obs()

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = check_actions(action, self.action_space.shape, type(self).__name__)
        qpos_before = self.data.qpos.copy()
        # Each env step starts MuJoCo's constraint solver cold, as mujoco.rollout does (it cannot
        # hand back a warm start), so a single env and a batched one follow the same trajectory
        # bit for bit; the solution differs from a warm-started one only within solver tolerance.
        self.data.qacc_warmstart[:] = 0.0
        self.do_simulation(action, self.frame_skip)
        states = get_state(self.model, self.data)[None]
        qpos, qvel = qpos_qvel(self.model, states)
        derived = self._derived(states)
        rewards, terminated, terms = self.rewards(
            self._task[None], qpos_before[None], qpos, action[None], derived, self.dt
        )
        info = {"task": self.get_task(), **{k: float(v[0]) for k, v in terms.items()}}
        if self.render_mode == "human":
            self.render()
        observation = self.observations(qpos, qvel, derived)[0]
        return observation, float(rewards[0]), bool(terminated[0]), False, info


def rllab_reset_qpos_qvel(
    rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """rllab's reset noise, N(0, 0.01) on qpos and N(0, 0.1) on qvel, at Gymnasium's
    ``reset_noise_scale`` of 0.1 (qpos first, then qvel, as rllab draws them: cbfinn/maml_rl,
    ``rllab/envs/mujoco/mujoco_env.py``, ``reset_mujoco``)."""
    qpos = init_qpos + 0.1 * scale * rng.standard_normal(init_qpos.shape)
    qvel = init_qvel + scale * rng.standard_normal(init_qvel.shape)
    return qpos, qvel


def control_costs(actions: np.ndarray, weight: float) -> np.ndarray:
    """``weight * |a|^2`` per copy."""
    return weight * sum_of_squares(list(actions.T))


def sum_of_squares(coordinates: list):
    """The sum of squares of ``coordinates``, added in their order: one copy's floats, or one
    array per coordinate over copies, with the same bits either way (a single env's step on
    Python floats and a batched env's on arrays agree exactly)."""
    total = coordinates[0] * coordinates[0]
    for value in coordinates[1:]:
        total = total + value * value
    return total


def sample_directions(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` directions, (n, 1): +1 or -1 with equal probability."""
    return rng.choice(np.array([-1.0, 1.0]), size=(check_count(n, "n"), 1))


def sample_speeds(n: int, rng: np.random.Generator, high: float) -> np.ndarray:
    """``n`` goal velocities, (n, 1), uniform in [0, high]."""
    return rng.uniform(0.0, high, size=(check_count(n, "n"), 1))


def direction_rewards(direction, velocity):
    """``d * v_x``: reward for running in the task's direction (floats, or arrays over copies)."""
    return direction * velocity
