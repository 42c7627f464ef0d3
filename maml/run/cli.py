"""The shared command line of the trainers: flags > --config > preset > defaults, --resume."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from maml.run.config import (
    AUTO,
    add_arguments,
    from_dict,
    optional_fields,
    read_toml,
    resolve_config,
)
from maml.run.distributed import world_size
from maml.run.errors import UsageError
from maml.run.folder import folder_name, new_run_dir, remove_if_unused
from maml.run.loop import Stopped
from maml.run.presets import has_preset, preset_names, read_preset
from maml.run.saved import read_run_config

C = TypeVar("C")


def parse_train_args(
    argv: Sequence[str] | None, cls: type[C], prog: str, description: str, name_field: str
) -> tuple[C, Path, bool]:
    """The resolved configuration, the run directory, and whether to resume.

    ``name_field`` names the field (``task``, ``env``) whose value picks the preset
    (``configs/<value>.toml``, shipped with the package) and names new run folders.
    """
    shown, source = _shown_defaults(argv, cls, name_field)
    # No abbreviations: a mistyped flag is an error, not a prefix of another flag.
    parser = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)
    add_arguments(parser, cls, shown, source)
    parser.add_argument(
        "--config",
        metavar="FILE.toml|PRESET",
        help="settings file (keys as the flags), or the name of a shipped preset: "
        + ", ".join(preset_names()),
    )
    parser.add_argument("--run-dir", metavar="DIR", help="output folder (default runs/NAME-TIME)")
    parser.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR where it stopped (flags may "
        "only extend or place it: " + ", ".join(_flag(n) for n in resumable(cls)) + ")",
    )
    flags = vars(parser.parse_args(argv))
    config_file, run_dir, resume = (flags.pop(k, None) for k in ("config", "run_dir", "resume"))
    file_values, file_source = _config_values(config_file)
    if file_values:  # each layer is validated on its own, so that an error names its source
        from_dict(cls, file_values, file_source)
    if resume is not None:
        if run_dir is not None:
            raise UsageError("--resume DIR continues in DIR; do not also give --run-dir")
        run_path = Path(resume)
        if not (run_path / "config.toml").is_file():
            raise UsageError(
                f"--resume {resume}: no run there ({run_path / 'config.toml'} missing)"
            )
        return _resumed(cls, run_path, {**file_values, **flags}), run_path, True
    name = flags.get(name_field, file_values.get(name_field, getattr(cls, name_field)))
    from_dict(cls, {name_field: name}, "command line")  # an unknown name: the allowed ones
    # Every task and env of ours has a preset: a missing one is an error, never the bare
    # defaults; a config class may say another preset or none (a family a user brings).
    preset = cls.preset_of(name) if hasattr(cls, "preset_of") else name
    config = resolve_config(
        cls,
        {**file_values, **flags},
        None,
        read_preset(preset) if preset else {},
        f"preset {preset}" if preset else "defaults",
    )
    if run_dir is None and world_size() == 1:
        return config, new_run_dir(getattr(config, name_field)), False
    run_path = Path(run_dir) if run_dir else _torchrun_run_dir(getattr(config, name_field))
    if (run_path / "checkpoint.pt").exists():
        if int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0:
            # torchrun restarted the ranks after a failure: continue the run.
            return _resumed(cls, run_path, {**file_values, **flags}), run_path, True
        raise UsageError(f"--run-dir {run_path} holds a run already; use --resume {run_path}")
    run_path.mkdir(parents=True, exist_ok=True)
    return config, run_path, False


def _resumed(cls: type[C], run_path: Path, given: dict[str, Any]) -> C:
    """The settings of the run in ``run_path`` with the ``given`` ones over them, refused by name
    where they would change what it trains."""
    before = read_run_config(run_path, cls, "train")
    # auto for a setting the run has chosen keeps its choice; a resumable one chooses again
    keep = optional_fields(cls) - set(resumable(cls))
    given = {k: v for k, v in given.items() if k not in keep or v not in (None, AUTO)}
    source = str(run_path / "config.toml")
    config = resolve_config(cls, given, None, dataclasses.asdict(before), source)
    _check_resume(before, config, run_path)
    return config


def _torchrun_run_dir(name: str) -> Path:
    """Every rank's run folder, the same on each: named after torchrun's rendezvous id."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    if run_id == "none":
        raise UsageError(
            "under torchrun give --run-dir DIR (the same on every node), or let the rendezvous "
            "id name the run (torchrun --standalone, or --rdzv-id)"
        )
    return Path("runs") / f"{folder_name(name)}-{run_id}"


def resumable(cls: type) -> list[str]:
    """Fields a resume may change: they extend or place a run, not what it trains."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable")]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_resume(before: Any, after: Any, run_dir: Path) -> None:
    """Refuse settings that would change what a resumed run trains, naming them."""
    allowed = set(resumable(type(before)))
    old, new = dataclasses.asdict(before), dataclasses.asdict(after)
    changed = [k for k in new if new[k] != old[k] and k not in allowed]
    if changed:
        given = ", ".join(f"{_flag(k)} {new[k]} (the run has {old[k]})" for k in changed)
        raise UsageError(
            f"--resume {run_dir} continues that run as it was set up; {given} would change what "
            f"it trains. When resuming, only {', '.join(_flag(k) for k in sorted(allowed))} may "
            f"change; start a new run for other settings"
        )
    check = getattr(after, "check_resume", None)
    if check is not None:
        check(before)


def _config_values(config: str | None) -> tuple[dict[str, Any], str]:
    """The values of ``--config``: a TOML file, or else a shipped preset of that name."""
    if config is None:
        return {}, ""
    if Path(config).is_file():
        return read_toml(config), f"config file {config}"
    if not has_preset(config):
        raise UsageError(
            f"--config {config}: no such file, and no preset of that name; the presets are "
            f"{', '.join(preset_names())}"
        )
    return read_preset(config), f"preset {config}"


def _shown_defaults(
    argv: Sequence[str] | None, cls: type, name_field: str
) -> tuple[dict[str, Any], str]:
    """The values ``--help`` shows as defaults: the preset's when ``--task``/``--env`` (or
    ``--config``) names one, the run's with ``--resume``, else the built-in defaults."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in (_flag(name_field), "--config", "--resume"):
        pre.add_argument(flag)
    known, _ = pre.parse_known_args(argv)
    try:
        if known.resume:
            return read_toml(Path(known.resume) / "config.toml"), f"run {known.resume}"
        values, source = _config_values(known.config)
        name = getattr(known, name_field) or values.get(name_field, getattr(cls, name_field))
        if has_preset(name):
            label = f"{source} over preset {name}" if source else f"preset {name}"
            return {**read_preset(name), **values}, label
    except UsageError:
        pass  # the real parse reports it
    return {}, ""


def run_training(
    train: Callable[[C, Path, bool], object], config: C, run_dir: Path, resume: bool
) -> int:
    """Train; a stop signal exits with 128 + its number (130 for Ctrl-C, 143 for SIGTERM), the
    run resumable. A start that fails before writing anything (bad data, say) leaves no empty
    run directory behind."""
    try:
        train(config, run_dir, resume)
    except Stopped as stopped:
        return 128 + stopped.signum
    except KeyboardInterrupt:  # before training started: nothing to keep
        _remove_if_unused(run_dir)
        print("stopped before training started", file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception:
        _remove_if_unused(run_dir)
        raise
    if os.environ.get("RANK", "0") == "0":
        print(f"done: {run_dir}")
    return 0


def _remove_if_unused(run_dir: Path) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 owns the folder
        remove_if_unused(run_dir)
