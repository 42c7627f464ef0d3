"""The presets: each task family's published settings, shipped inside the package.

They live in ``configs/`` in the repository and install as the package ``maml_configs``, so an
installed wheel reads the same files as a checkout (``importlib.resources``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maml.run.config import parse_toml
from maml.run.errors import UsageError

if TYPE_CHECKING:
    from importlib.abc import Traversable

PACKAGE = "maml_configs"


def _folder() -> Traversable:
    """The installed presets, or a source checkout's ``configs/`` when the toolkit runs from one
    without being installed (``PYTHONPATH=checkout``)."""
    try:
        return resources.files(PACKAGE)
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "configs"


def preset_names() -> list[str]:
    """Names of the shipped presets (``configs/<name>.toml``)."""
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in _folder().iterdir()
        if entry.name.endswith(".toml")
    )


def has_preset(name: str) -> bool:
    return _folder().joinpath(f"{name}.toml").is_file()


def read_preset(name: str) -> dict[str, Any]:
    """A preset's settings; an unknown name is a usage error that lists the presets."""
    if not has_preset(name):
        raise UsageError(
            f"no preset named {name!r}; the presets are {', '.join(preset_names())} (is the "
            f"package installed whole? they ship as {PACKAGE})"
        )
    text = _folder().joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return parse_toml(text, f"preset {name}")
