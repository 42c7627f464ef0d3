"""The task families by the short names the command lines use."""

from __future__ import annotations

from envs.ant import AntDir, AntVel
from envs.half_cheetah import HalfCheetahDir, HalfCheetahVel
from envs.navigation import Navigation2D

FAMILIES: dict[str, type] = {
    "navigation-2d": Navigation2D,
    "halfcheetah-vel": HalfCheetahVel,
    "halfcheetah-dir": HalfCheetahDir,
    "ant-vel": AntVel,
    "ant-dir": AntDir,
}


def family_class(family: str | type) -> type:
    """The env class of a short name (``"halfcheetah-vel"``), or the class itself."""
    if isinstance(family, type) and family in FAMILIES.values():
        return family
    if isinstance(family, str) and family in FAMILIES:
        return FAMILIES[family]
    raise ValueError(f"unknown task family {family!r}; allowed: {', '.join(FAMILIES)}")
