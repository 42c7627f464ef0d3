"""Validation of what users hand to the envs: counts, tasks, actions and render modes, with errors
that name the value and what is allowed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_count(n: int, what: str) -> int:
    """``n`` as an int, if it is a positive integer (a bool or an integral float is not)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{what} must be a positive integer; got {n!r}")
    return int(n)


def check_render_mode(mode: str | None, allowed: Sequence[str], owner: str) -> str | None:
    """``mode`` if it is None or one of ``allowed``."""
    if mode is not None and mode not in allowed:
        choices = (
            f" or one of {', '.join(map(repr, allowed))}" if allowed else " (it does not render)"
        )
        raise ValueError(f"{owner} render_mode must be None{choices}; got {mode!r}")
    return mode


def _as_floats(value, what: str) -> np.ndarray:
    """``value`` as a float64 array, refusing what converts only by accident (bools, text)."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):  # ragged nested sequences
        array = None
    if array is None or array.dtype.kind not in "iuf":
        raise ValueError(f"{what} must be real numbers; got {value!r}")
    return array.astype(np.float64)


def _task_rule(family: type) -> str:
    """What a task's numbers may be, in words."""
    if family.task_values is None:
        return "finite"
    return f"one of {', '.join(map(str, family.task_values))}"


def _allowed(array: np.ndarray, family: type) -> np.ndarray:
    """Which numbers of ``array`` a task of ``family`` may hold."""
    if family.task_values is None:
        return np.isfinite(array)
    return np.isin(array, family.task_values)


def check_task(task, family: type) -> np.ndarray:
    """One task of ``family`` as a float64 vector of length ``family.task_dim``; a family whose
    task is one number also takes that number alone."""
    name, task_dim = family.__name__, family.task_dim
    array = _as_floats(task, f"{name} task")
    if task_dim == 1 and array.shape == ():
        array = array.reshape(1)
    if array.shape != (task_dim,):
        number = " or be a number" if task_dim == 1 else ""
        raise ValueError(
            f"{name} task must have shape ({task_dim},){number}; got {task!r} of shape "
            f"{array.shape}"
        )
    if not _allowed(array, family).all():
        raise ValueError(f"{name} task must be {_task_rule(family)}; got {task!r}")
    return array


def check_tasks(tasks, count: int, family: type) -> np.ndarray:
    """A batch of ``count`` tasks of ``family`` as a float64 array (count, task_dim); a family
    whose task is one number also takes (count,)."""
    name, task_dim = family.__name__, family.task_dim
    array = _as_floats(tasks, f"{name} tasks")
    if task_dim == 1 and array.shape == (count,):
        array = array.reshape(count, 1)
    if array.shape != (count, task_dim):
        shape = f"({count}, {task_dim})" + (f" or ({count},)" if task_dim == 1 else "")
        raise ValueError(
            f"{name} tasks for {count} copies must have shape {shape}; got {array.shape}"
        )
    rows = np.flatnonzero(~_allowed(array, family).all(axis=1))
    if len(rows):
        raise ValueError(
            f"{name} tasks must be {_task_rule(family)}; rows {rows.tolist()} are "
            f"{array[rows].tolist()}"
        )
    return array


def check_mask(count: int, mask) -> np.ndarray:
    """``mask`` if it is a bool array with one entry per copy (``count``)."""
    mask = np.asarray(mask)
    if mask.shape != (count,) or mask.dtype != bool:
        raise ValueError(
            f"a copy mask must be a bool array of shape ({count},); got {mask.dtype} {mask.shape}"
        )
    return mask


def copy_seeds(seed: int | list[int] | None, n: int) -> list[int | None]:
    """Each of ``n`` copies' reset seed: copy i of ``seed=s`` gets s + i, a list gives each its
    own, None none."""
    if seed is None:
        return [None] * n
    if isinstance(seed, (list, tuple)):
        if len(seed) != n:
            raise ValueError(f"reset got {len(seed)} seeds for {n} copies")
        return list(seed)
    return [int(seed) + i for i in range(n)]


def check_actions(actions, shape: tuple[int, ...], family: str) -> np.ndarray:
    """Actions as float64 of exactly ``shape``, all finite."""
    array = np.asarray(actions, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{family} action must have shape {shape}; got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{family} action must be finite; got {array}")
    return array
