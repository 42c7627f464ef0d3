"""The shared command line of the trainers: flags > --config > preset > defaults, --resume."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from maml.config import add_arguments, read_toml, resolve_config
from maml.errors import UsageError
from maml.runs import new_run_dir

PRESETS = Path(__file__).resolve().parents[1] / "configs"
C = TypeVar("C")


def parse_train_args(
    argv: Sequence[str] | None, cls: type[C], prog: str, description: str, name_field: str
) -> tuple[C, Path, bool]:
    """The resolved configuration, the run directory, and whether to resume.

    ``name_field`` names the field (``task``, ``env``) whose value picks ``configs/<value>.toml``
    as the preset and names new run folders.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser, cls)
    parser.add_argument("--config", metavar="FILE.toml", help="settings file (keys as the flags)")
    parser.add_argument("--run-dir", metavar="DIR", help="output folder (default runs/NAME-TIME)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR where it stopped")
    flags = vars(parser.parse_args(argv))
    config_file, run_dir, resume = (flags.pop(k, None) for k in ("config", "run_dir", "resume"))
    if resume is not None:
        if run_dir is not None:
            raise UsageError("--resume DIR continues in DIR; do not also give --run-dir")
        run_path = Path(resume)
        if not (run_path / "config.toml").is_file():
            raise UsageError(
                f"--resume {resume}: no run there ({run_path / 'config.toml'} missing)"
            )
        base = read_toml(run_path / "config.toml")
        config = resolve_config(cls, flags, config_file, base, str(run_path / "config.toml"))
        return config, run_path, True
    file_values = read_toml(config_file) if config_file else {}
    name = flags.get(name_field, file_values.get(name_field, getattr(cls, name_field)))
    preset = PRESETS / f"{name}.toml"
    base = read_toml(preset) if preset.is_file() else {}
    config = resolve_config(cls, flags, config_file, base, f"preset {preset}")
    if run_dir is None:
        return config, new_run_dir(getattr(config, name_field)), False
    run_path = Path(run_dir)
    if (run_path / "checkpoint.pt").exists():
        raise UsageError(f"--run-dir {run_dir} holds a run already; use --resume {run_dir}")
    run_path.mkdir(parents=True, exist_ok=True)
    return config, run_path, False


def run_training(
    train: Callable[[C, Path, bool], object], config: C, run_dir: Path, resume: bool
) -> int:
    """Train, mapping Ctrl-C (after its checkpoint) to exit status 130; a start that fails
    before writing anything (bad data, say) leaves no empty run directory behind."""
    try:
        train(config, run_dir, resume)
    except KeyboardInterrupt:
        _remove_if_empty(run_dir)
        return 130
    except Exception:
        _remove_if_empty(run_dir)
        raise
    print(f"done: {run_dir}")
    return 0


def _remove_if_empty(run_dir: Path) -> None:
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()
