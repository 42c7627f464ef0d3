"""The presets: each task family's published settings, shipped inside the package.

They live in ``configs/`` in the repository and install as the package ``maml_configs``, so an
installed wheel reads the same files as a checkout (``importlib.resources``).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from maml.config import parse_toml
from maml.errors import UsageError

PACKAGE = "maml_configs"


def preset_names() -> list[str]:
    """Names of the shipped presets (``configs/<name>.toml``)."""
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in resources.files(PACKAGE).iterdir()
        if entry.name.endswith(".toml")
    )


def has_preset(name: str) -> bool:
    return resources.files(PACKAGE).joinpath(f"{name}.toml").is_file()


def read_preset(name: str) -> dict[str, Any]:
    """A preset's settings; an unknown name is a usage error that lists the presets."""
    if not has_preset(name):
        raise UsageError(
            f"no preset named {name!r}; the presets are {', '.join(preset_names())} (is the "
            f"package installed whole? they ship as {PACKAGE})"
        )
    text = resources.files(PACKAGE).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return parse_toml(text, f"preset {name}")
