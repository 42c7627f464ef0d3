"""Dataclass configurations: command-line flags, TOML files, and validation with clear errors."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Any, TypeVar

from maml.run.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

C = TypeVar("C")
_SCALARS = (bool, int, float, str)
# The word for "choose for me" of a field typed ``X | None``: the run writes the value it chose.
AUTO = "auto"


def field_types(cls: type) -> dict[str, type]:
    """The scalar type of every field of a config dataclass (X of a field typed X | None)."""
    hints = typing.get_type_hints(cls)
    types = {}
    for f in dataclasses.fields(cls):
        kinds = [k for k in typing.get_args(hints[f.name]) if k is not type(None)]
        types[f.name] = kinds[0] if kinds else hints[f.name]
    return types


def optional_fields(cls: type) -> set[str]:
    """Fields typed ``X | None``: ``auto`` (None) lets the run choose, and it records its choice."""
    hints = typing.get_type_hints(cls)
    return {f.name for f in dataclasses.fields(cls) if type(None) in typing.get_args(hints[f.name])}


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    shown: dict[str, Any] | None = None,
    source: str = "",
) -> None:
    """One ``--flag`` per field; flags not given stay absent from the namespace.

    The help shows each field's default, or its value in ``shown`` (a preset's, say), naming
    ``source``.
    """
    types = field_types(cls)
    optional = optional_fields(cls)
    shown = shown or {}
    for f in dataclasses.fields(cls):
        kind = types[f.name]
        flag = "--" + f.name.replace("_", "-")
        built_in = AUTO if f.default is None else f.default
        if f.name in shown and shown[f.name] != f.default:
            default = f"{_shown(shown[f.name])}, from {source}; built-in {built_in}"
        else:
            default = f"{_shown(shown.get(f.name, f.default))}"
        help_text = f.metadata.get("help", "") + f" (default: {default})"
        choices = f.metadata.get("choices")
        if kind is bool:
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            metavar = kind.__name__.upper() if choices is None else "{" + ",".join(choices) + "}"
            parser.add_argument(
                flag,
                type=_parser_for(kind, flag, f.name in optional),
                default=argparse.SUPPRESS,
                help=help_text,
                metavar=f"{{{metavar},{AUTO}}}" if f.name in optional else metavar,
            )


def _shown(value: Any) -> Any:
    return AUTO if value is None else value


def _parser_for(kind: type, flag: str, optional: bool):
    def parse(text: str) -> Any:
        if optional and text == AUTO:
            return None
        try:
            value = kind(text)
        except ValueError:
            allowed = f"a {kind.__name__} or {AUTO}" if optional else f"a valid {kind.__name__}"
            raise UsageError(f"{flag} {text!r} is not {allowed}") from None
        return value

    return parse


def from_dict(cls: type[C], values: dict[str, Any], source: str) -> C:
    """Build and validate a config; ``source`` names where the values came from, for errors."""
    types = field_types(cls)
    optional = optional_fields(cls)
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise UsageError(
            f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(types)}"
        )
    for name, value in values.items():
        kind = types[name]
        if name in optional and value in (None, AUTO):
            values = {**values, name: None}
            continue
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            values = {**values, name: float(value)}
            ok = True
        if not ok:
            expected = f"a {kind.__name__}" + (f' or "{AUTO}"' if name in optional else "")
            raise UsageError(
                f"{source}: {name} = {value!r} is a {type(value).__name__}; expected {expected}"
            )
    config = cls(**values)
    validate(config)
    return config


def validate(config: Any) -> None:
    """Check choices and positivity declared in the fields' metadata."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is None:  # auto: the run chooses
            continue
        flag = "--" + f.name.replace("_", "-")
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise UsageError(f"{flag} {value!r} is not allowed; choose one of {', '.join(choices)}")
        either = f" or {AUTO}" if f.default is None else ""
        if f.metadata.get("positive") and not value > 0:
            raise UsageError(f"{flag} must be positive{either}, got {value}")
        if f.metadata.get("non_negative") and value < 0:
            raise UsageError(f"{flag} must be zero or more{either}, got {value}")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict, or raise a UsageError naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"config file {path} is not valid TOML: {error}") from None
    return parse_toml(text, f"config file {path}")


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """Parse TOML text, or raise a UsageError naming ``source`` and the problem."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{source} is not valid TOML: {error}") from None


def to_toml(config: Any, skip: set[str] | frozenset[str] = frozenset()) -> str:
    """Write a flat config dataclass as TOML (strings, numbers and booleans), without the fields
    in ``skip`` and those left to ``auto`` (TOML has no None: reading the file gives them back)."""
    values = dataclasses.asdict(config)
    return toml_table({k: v for k, v in values.items() if k not in skip and v is not None})


def toml_table(values: dict[str, Any]) -> str:
    """``key = value`` lines for strings, numbers and booleans."""
    lines = []
    for name, value in values.items():
        if not isinstance(value, _SCALARS):
            raise TypeError(f"{name} holds {type(value).__name__}; only scalars")
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = json.dumps(value)  # a JSON string is a valid TOML basic string
        else:
            text = repr(value)
        lines.append(f"{name} = {text}")
    return "\n".join(lines) + "\n"


def resolve_config(
    cls: type[C],
    flags: dict[str, Any],
    config_file: str | None = None,
    base: dict[str, Any] | None = None,
    base_source: str = "defaults",
) -> C:
    """Settings in order of precedence: command-line flags, then ``--config`` file, then ``base``.

    Each source is validated on its own first, so an error names the file or flag it came from.
    """
    layers = [(base or {}, base_source)]
    if config_file is not None:
        layers.append((read_toml(config_file), f"config file {config_file}"))
    layers.append((flags, "command line"))
    merged: dict[str, Any] = {}
    for values, source in layers:
        from_dict(cls, values, source)
        merged.update(values)
    return from_dict(cls, merged, "settings")
