"""Validation of what users hand to the envs: tasks and actions, with errors that name the value."""

from __future__ import annotations

import numpy as np


def check_task(task, task_dim: int, family: str) -> np.ndarray:
    """One task as a float64 vector of length ``task_dim``."""
    array = np.asarray(task, dtype=np.float64)
    if array.shape != (task_dim,):
        raise ValueError(f"{family} task must have shape ({task_dim},); got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{family} task must be finite; got {array}")
    return array


def check_tasks(tasks, count: int, task_dim: int, family: str) -> np.ndarray:
    """A batch of tasks as a float64 array (count, task_dim)."""
    array = np.asarray(tasks, dtype=np.float64)
    if array.shape != (count, task_dim):
        raise ValueError(
            f"{family} tasks for {count} copies must have shape ({count}, {task_dim}); "
            f"got {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{family} tasks must be finite; rows {np.where(~np.isfinite(array))[0]}")
    return array


def check_actions(actions, shape: tuple[int, ...], family: str) -> np.ndarray:
    """Actions as float64 of exactly ``shape``, all finite."""
    array = np.asarray(actions, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{family} action must have shape {shape}; got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{family} action must be finite; got {array}")
    return array


def check_count(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{what} must be a positive integer; got {n!r}")
    return int(n)
