"""Task families a user brings: any Gymnasium env with ``sample_tasks`` and ``set_task``.

The family protocol, the one our own families follow too:

- ``sample_tasks(n, rng)`` -> ``n`` tasks drawn from the numpy Generator ``rng``, as an array of
  numbers, (n,) or (n, d): a pole length, a goal, an index into a fixed list of tasks;
- ``set_task(task)`` gives the env that task until it is set again (resets keep it); a task of
  one number arrives as a float, a longer one as a float64 vector;
- optionally ``sample_test_tasks(n, rng)``, where the family has its own meta-test tasks
  (Meta-World's test set); new draws of ``sample_tasks`` otherwise;
- optionally ``horizon``, the episode length (else the Gymnasium id's ``max_episode_steps``, else
  ``--horizon`` must say it);
- optionally ``info["success"]`` at each step: an episode succeeds where it is 1 at any step.

A family is named by a registered Gymnasium id (``gymnasium.make(id)`` builds it) or by
``module:Class`` (``Class()`` builds it). Its copies run as Python objects, many to a process:
:class:`envs.python_vector.PythonTaskEnv` splits them over ``workers`` groups run by Gymnasium's
``AsyncVectorEnv`` (one process per group, across the cores) or, with one worker, its
``SyncVectorEnv`` in this process.

Example, a CartPole whose pole length is the task::

    class PoleLengths(CartPoleEnv):
        horizon = 200

        def sample_tasks(self, n, rng):
            return rng.uniform(0.25, 1.0, size=n)

        def set_task(self, task):
            self.length = task  # half the pole's length
            self.polemass_length = self.masspole * self.length

    python -m maml_rl.train --env mymodule:PoleLengths
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

PROTOCOL = ("sample_tasks", "set_task")


@dataclass(frozen=True, eq=False)
class PythonFamily:
    """A task family of Python Gymnasium envs, callable like a family class: ``family()`` is
    one env. ``make`` must pickle (a class, or a ``functools.partial`` of one)."""

    name: str
    make: Callable[..., gymnasium.Env]
    horizon: int | None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __call__(self, **kwargs: Any) -> gymnasium.Env:
        return self.make(**kwargs)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` training tasks, (n, d) float64."""
        return _tasks_of(self, "sample_tasks", n, rng)

    def sample_test_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` meta-test tasks, (n, d) float64: the family's own, or new training draws."""
        return _tasks_of(self, "sample_test_tasks", n, rng)


def _tasks_of(family: PythonFamily, method: str, n: int, rng: np.random.Generator) -> np.ndarray:
    env = template(family)
    draw = getattr(env, method, None) or env.sample_tasks
    tasks = draw(n, rng)
    try:
        array = np.asarray(tasks, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim not in (1, 2) or len(array) != n:
        raise ValueError(
            f"{family.name}.{method}({n}, rng) must give {n} tasks as numbers, ({n},) or "
            f"({n}, d); got {tasks!r}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{family.name}.{method} gave tasks that are not finite: {tasks!r}")
    return array.reshape(n, -1)


@functools.cache
def template(family: PythonFamily) -> Any:
    """One env of ``family`` in this process, unwrapped, for its tasks and spaces."""
    return family.make().unwrapped


def python_family(name: str) -> PythonFamily:
    """The family of a registered Gymnasium id, of ``module:Class``, or of ``module:Id`` (an id
    that importing ``module`` registers); ValueError if it is none of them or does not follow
    the protocol."""
    env_id = name
    if ":" in name:
        module, _, attribute = name.partition(":")
        found = _import(module, attribute, name)
        env_id = attribute if attribute in gymnasium.registry else None
    if env_id is not None and env_id in gymnasium.registry:
        spec = gymnasium.spec(env_id)
        found = spec.entry_point
        if isinstance(found, str):
            found = _import(*found.split(":", 1), name)
        make, horizon = functools.partial(gymnasium.make, env_id), spec.max_episode_steps
    elif ":" in name:
        make, horizon = found, None
    else:
        raise ValueError(f"{name!r} is neither a registered Gymnasium id nor module:Class")
    if not isinstance(found, type) or not issubclass(found, gymnasium.Env):
        raise ValueError(f"task family {name!r} is {found!r}, not a gymnasium.Env class")
    missing = [m for m in PROTOCOL if not callable(getattr(found, m, None))]
    if missing:
        raise ValueError(
            f"task family {name!r} ({found.__qualname__}) lacks {' and '.join(missing)}; a "
            f"family needs {' and '.join(PROTOCOL)} (see envs.python_family)"
        )
    horizon = getattr(found, "horizon", None) or horizon
    return PythonFamily(name, make, horizon, dict(getattr(found, "metadata", {})))


def _import(module: str, attribute: str, name: str) -> Any:
    """``module``'s ``attribute`` (dotted), or the module itself where ``attribute`` is not in
    it (an id its import registers)."""
    try:
        found = importlib.import_module(module)
    except ImportError as error:
        raise ValueError(f"task family {name!r}: cannot import {module} ({error})") from None
    try:
        for part in attribute.split("."):
            found = getattr(found, part)
    except AttributeError:
        if attribute in gymnasium.registry:
            return found
        raise ValueError(
            f"task family {name!r}: {module} has no {attribute} (nor does importing it register "
            f"a Gymnasium id {attribute!r})"
        ) from None
    return found
