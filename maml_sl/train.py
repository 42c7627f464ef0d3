"""``python -m maml_sl.train --task sinusoid``: meta-train a supervised MAML model."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from maml.config import add_arguments, read_toml, resolve_config
from maml.errors import UsageError, run_cli
from maml.runs import new_run_dir
from maml_sl.config import TrainConfig
from maml_sl.trainer import train

PRESETS = Path(__file__).resolve().parents[1] / "configs"


def parse(argv: Sequence[str] | None) -> tuple[TrainConfig, Path, bool]:
    """The resolved configuration, the run directory, and whether to resume."""
    parser = argparse.ArgumentParser(
        prog="python -m maml_sl.train",
        description="Meta-train a model with MAML. Settings: flags > --config file > the task's "
        "preset in configs/ > built-in defaults (the MAML paper's sinusoid settings).",
    )
    add_arguments(parser, TrainConfig)
    parser.add_argument("--config", metavar="FILE.toml", help="settings file (keys as the flags)")
    parser.add_argument("--run-dir", metavar="DIR", help="output folder (default runs/TASK-TIME)")
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
        config = resolve_config(
            TrainConfig, flags, config_file, base, str(run_path / "config.toml")
        )
        return config, run_path, True
    file_values = read_toml(config_file) if config_file else {}
    task = flags.get("task", file_values.get("task", TrainConfig.task))
    preset = PRESETS / f"{task}.toml"
    base = read_toml(preset) if preset.is_file() else {}
    config = resolve_config(TrainConfig, flags, config_file, base, f"preset {preset}")
    if run_dir is None:
        return config, new_run_dir(config.task), False
    run_path = Path(run_dir)
    if (run_path / "checkpoint.pt").exists():
        raise UsageError(f"--run-dir {run_dir} holds a run already; use --resume {run_dir}")
    run_path.mkdir(parents=True, exist_ok=True)
    return config, run_path, False


def main(argv: Sequence[str] | None = None) -> int:
    config, run_dir, resume = parse(argv)
    try:
        train(config, run_dir, resume=resume)
    except KeyboardInterrupt:
        return 130
    print(f"done: {run_dir}")
    return 0


if __name__ == "__main__":
    run_cli(main)
