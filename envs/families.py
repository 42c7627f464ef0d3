"""The task families by the short names the command lines use, and the families users bring."""

from __future__ import annotations

import functools

import gymnasium

from envs.ant import AntDir, AntVel
from envs.half_cheetah import HalfCheetahDir, HalfCheetahVel
from envs.metaworld import metaworld_family
from envs.mujoco_task import MujocoTaskEnv
from envs.navigation import Navigation2D
from envs.python_family import PythonFamily, python_family

FAMILIES: dict[str, type] = {
    "navigation-2d": Navigation2D,
    "halfcheetah-vel": HalfCheetahVel,
    "halfcheetah-dir": HalfCheetahDir,
    "ant-vel": AntVel,
    "ant-dir": AntDir,
}
METAWORLD_PREFIX = "metaworld-"
ALLOWED = (
    f"{', '.join(FAMILIES)}, metaworld-ml1-<env> (e.g. metaworld-ml1-reach), metaworld-ml10, "
    f"a registered Gymnasium id, or module:Class (an env with sample_tasks and set_task)"
)


def family_class(family: str | type | PythonFamily) -> type | PythonFamily:
    """The family of a name: our class for a short name (``"halfcheetah-vel"``), else a
    :class:`PythonFamily` (Meta-World, a Gymnasium id, ``module:Class``); a family is itself."""
    if isinstance(family, PythonFamily) or (
        isinstance(family, type) and family in FAMILIES.values()
    ):
        return family
    if isinstance(family, str) and family in FAMILIES:
        return FAMILIES[family]
    if isinstance(family, str) and (
        family.startswith(METAWORLD_PREFIX) or ":" in family or family in gymnasium.registry
    ):
        return _python_family(family)
    raise ValueError(f"unknown task family {family!r}; allowed: {ALLOWED}")


@functools.cache
def _python_family(name: str) -> PythonFamily:
    """One family object per name and process, so its template env is built once."""
    if name.startswith(METAWORLD_PREFIX):
        return metaworld_family(name)
    return python_family(name)


def is_mujoco(family: type | PythonFamily) -> bool:
    """Whether ``family`` is one of our MuJoCo families (batched physics, frame skip)."""
    return isinstance(family, type) and issubclass(family, MujocoTaskEnv)
