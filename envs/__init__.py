"""Parameterized task environments for meta-RL, as plain Gymnasium environments.

``import envs`` registers every family with Gymnasium, under ``maml/<Family>-v0`` and under the
short names the command lines use:

    >>> import gymnasium as gym, envs
    >>> env = gym.make("maml/HalfCheetahVel-v0")          # or gym.make("halfcheetah-vel")
    >>> batch = gym.make_vec("halfcheetah-vel", num_envs=8)  # a BatchedTaskEnv
"""

from __future__ import annotations

import warnings

import gymnasium

from envs.ant import AntDir, AntVel
from envs.families import FAMILIES, family_class, is_mujoco
from envs.half_cheetah import HalfCheetahDir, HalfCheetahVel
from envs.navigation import Navigation2D
from envs.python_family import PythonFamily
from envs.python_vector import PythonTaskEnv
from envs.vector import BatchedTaskEnv

__all__ = [
    "FAMILIES",
    "AntDir",
    "AntVel",
    "BatchedTaskEnv",
    "HalfCheetahDir",
    "HalfCheetahVel",
    "Navigation2D",
    "PythonFamily",
    "PythonTaskEnv",
    "family_class",
    "is_mujoco",
    "make_batched",
]


def make_batched(
    family: str | type | PythonFamily,
    num_envs: int,
    *,
    max_episode_steps: int | None = None,
    nthread: int | None = None,
    **env_kwargs,
) -> BatchedTaskEnv | PythonTaskEnv:
    """``num_envs`` copies of a family with a task each: our families' :class:`BatchedTaskEnv`
    (``nthread`` MuJoCo threads), a user's or Meta-World's :class:`PythonTaskEnv` (``nthread``
    worker processes; 1: in this process)."""
    found = family_class(family)
    if isinstance(found, PythonFamily):
        if env_kwargs:
            raise ValueError(f"{found.name} takes no env arguments; got {sorted(env_kwargs)}")
        return PythonTaskEnv(found, num_envs, max_episode_steps=max_episode_steps, workers=nthread)
    return BatchedTaskEnv(
        found, num_envs, max_episode_steps=max_episode_steps, nthread=nthread, **env_kwargs
    )


def _register() -> None:
    for short, cls in FAMILIES.items():
        entry_point = f"{cls.__module__}:{cls.__name__}"
        for env_id in (f"maml/{cls.__name__}-v0", short):
            if env_id in gymnasium.registry:
                theirs = gymnasium.registry[env_id].entry_point
                if theirs != entry_point:
                    warnings.warn(
                        f"gymnasium id {env_id!r} is registered already (to {theirs}); it is "
                        f"left as it is, and {cls.__name__} is not registered under it",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                continue
            gymnasium.register(
                id=env_id,
                entry_point=entry_point,
                vector_entry_point=_vector_entry(cls),
                max_episode_steps=cls.horizon,
            )


def _vector_entry(cls: type):
    def make(num_envs: int, **kwargs) -> BatchedTaskEnv:
        return BatchedTaskEnv(cls, num_envs, **kwargs)

    return make


_register()
