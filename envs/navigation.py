"""2D navigation (the MAML paper's point-mass task): reach a goal in the plane."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.checks import check_actions, check_count, check_render_mode, check_task

MAX_STEP = 0.1  # actions are clipped to [-0.1, 0.1] per coordinate
GOAL_RANGE = 0.5  # goals uniform in [-0.5, 0.5]^2
GOAL_RADIUS = 0.01  # the episode ends within 0.01 of the goal (per coordinate)
IMAGE_SIZE = 128  # rgb_array frames: IMAGE_SIZE^2 pixels showing [-1, 1]^2
DOT_RADIUS = 0.03  # the point and the goal drawn as discs of this radius


def navigation_step(
    positions: np.ndarray, actions: np.ndarray, goals: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One step of n point masses: (positions, rewards, terminated, distances), arrays over n."""
    positions = positions + np.clip(actions, -MAX_STEP, MAX_STEP)
    offset = positions - goals
    distances = np.sqrt((offset**2).sum(axis=-1))
    terminated = (np.abs(offset) < GOAL_RADIUS).all(axis=-1)
    return positions, -distances, terminated, distances


class Navigation2D(gym.Env):
    """A point in the plane moves to a goal (Finn et al. 2017, section 5.3).

    ## Action space
    ``Box(-0.1, 0.1, (2,), float32)``: a displacement; the env clips actions outside the box (a
    Gaussian policy's samples) to it.

    ## Observation space
    ``Box(-inf, inf, (2,), float64)``: the position. Every episode starts at the origin.

    ## Rewards
    Minus the Euclidean distance from the new position to the goal, as in the MAML authors'
    code (the paper's text says squared distance).

    ## Episode end
    Terminates when both coordinates are within 0.01 of the goal (the authors' code); truncated at
    100 steps by the registered time limit.

    ## Task
    The goal, ``(2,)``; ``sample_tasks`` draws goals uniformly in [-0.5, 0.5]^2. It stays fixed
    across resets until ``set_task`` (or ``reset(options={"task": ...})``) changes it.

    ## Rendering
    ``render_mode="rgb_array"``: ``render()`` gives a 128 x 128 image of [-1, 1]^2 (x to the
    right, y up), the goal a green disc and the point a red one (on the border when outside).

    ## Arguments
    ``task``: the initial goal, (0, 0) if not given. ``render_mode``: None or ``"rgb_array"``.
    """

    # Frames per second of a recorded video: the task has no physical time step.
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    task_dim = 2
    task_values = None  # any finite goal
    horizon = 100

    def __init__(self, task=None, render_mode: str | None = None) -> None:
        self.render_mode = check_render_mode(
            render_mode, self.metadata["render_modes"], type(self).__name__
        )
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = spaces.Box(-MAX_STEP, MAX_STEP, (2,), np.float32)
        self._position = np.zeros(2)
        self.set_task(np.zeros(2) if task is None else task)

    @staticmethod
    def sample_tasks(n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` goals, (n, 2), uniform in [-0.5, 0.5]^2."""
        return rng.uniform(-GOAL_RANGE, GOAL_RANGE, size=(check_count(n, "n"), 2))

    def set_task(self, task) -> None:
        """Set the goal; it holds for every episode until set again."""
        self._goal = check_task(task, type(self))

    def get_task(self) -> np.ndarray:
        return self._goal.copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if options and "task" in options:
            self.set_task(options["task"])
        self._position = np.zeros(2)
        return self._position.copy(), {"task": self.get_task()}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = check_actions(action, (2,), type(self).__name__)
        positions, rewards, terminated, distances = navigation_step(
            self._position[None], action[None], self._goal[None]
        )
        self._position = positions[0]
        info = {"task": self.get_task(), "distance": float(distances[0])}
        return self._position.copy(), float(rewards[0]), bool(terminated[0]), False, info

    def render(self) -> np.ndarray | None:
        """The frame described under Rendering, or None without a render mode."""
        if self.render_mode is None:
            return None
        centres = (np.arange(IMAGE_SIZE) + 0.5) * (2 / IMAGE_SIZE) - 1
        x, y = np.meshgrid(centres, centres[::-1])  # the first row is the top
        image = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 255, dtype=np.uint8)
        for (cx, cy), colour in ((self._goal, (0, 160, 0)), (self._position, (220, 0, 0))):
            cx, cy = np.clip([cx, cy], -1, 1)
            image[(x - cx) ** 2 + (y - cy) ** 2 <= DOT_RADIUS**2] = colour
        return image
