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
from envs.families import FAMILIES, family_class
from envs.half_cheetah import HalfCheetahDir, HalfCheetahVel
from envs.navigation import Navigation2D
from envs.vector import BatchedTaskEnv

__all__ = [
    "FAMILIES",
    "AntDir",
    "AntVel",
    "BatchedTaskEnv",
    "HalfCheetahDir",
    "HalfCheetahVel",
    "Navigation2D",
    "family_class",
    "make_batched",
]


def make_batched(family: str | type, num_envs: int, **kwargs) -> BatchedTaskEnv:
    """A :class:`BatchedTaskEnv` of ``num_envs`` copies (also ``gymnasium.make_vec``'s entry)."""
    return BatchedTaskEnv(family, num_envs, **kwargs)


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
