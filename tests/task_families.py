"""Small task families a user might bring (``--env tests.task_families:Class``), for the tests."""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv


class PendulumMass(PendulumEnv):
    """Gymnasium's pendulum whose mass is the task."""

    horizon = 20

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(0.5, 2.0, size=n)

    def set_task(self, task: float) -> None:
        self.m = task


class PoleLength(CartPoleEnv):
    """Gymnasium's cart-pole (discrete actions) whose pole length is the task."""

    horizon = 20

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(0.25, 1.0, size=n)

    def set_task(self, task: float) -> None:
        self.length = task
        self.polemass_length = self.masspole * self.length


class Countdown(gymnasium.Env):
    """Observation: the steps taken; success at step ``task`` and every second step after it
    (never for a task of 0); the episode ends at step 6; train tasks 0, 3, 7, test tasks 4, 5."""

    observation_space = spaces.Box(-np.inf, np.inf, (1,))
    action_space = spaces.Box(-1.0, 1.0, (1,))
    horizon = 8

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice([0.0, 3.0, 7.0], size=n)

    def sample_test_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice([4.0, 5.0], size=n)

    def set_task(self, task: float) -> None:
        self.task = int(task)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        hit = self.task > 0 and self.t >= self.task and (self.t - self.task) % 2 == 0
        obs = np.array([self.t], dtype=np.float32)
        return obs, float(action[0]), self.t >= 6, False, {"success": float(hit)}


class NoSetTask(PendulumEnv):
    """Samples tasks, but cannot be given one."""

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(size=n)


gymnasium.register(
    "tests/PendulumMass-v0", entry_point=f"{__name__}:PendulumMass", max_episode_steps=20
)
