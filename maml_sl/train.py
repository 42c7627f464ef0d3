"""``python -m maml_sl.train --task sinusoid``: meta-train a supervised MAML model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from maml.run.cli import parse_train_args, run_training
from maml.run.errors import run_cli
from maml_sl.config import TrainConfig
from maml_sl.trainer import train


def parse(argv: Sequence[str] | None) -> tuple[TrainConfig, Path, bool]:
    """The resolved configuration, the run directory, and whether to resume."""
    return parse_train_args(
        argv,
        TrainConfig,
        prog="python -m maml_sl.train",
        description="Meta-train a model with MAML. Settings: flags > --config file > the task's "
        "preset in configs/ > built-in defaults (the MAML paper's sinusoid settings).",
        name_field="task",
    )


def main(argv: Sequence[str] | None = None) -> int:
    config, run_dir, resume = parse(argv)
    return run_training(train, config, run_dir, resume)


if __name__ == "__main__":
    run_cli(main)
