"""``python -m maml_rl.train --env halfcheetah-vel``: meta-train a policy with MAML-TRPO."""

from __future__ import annotations

from collections.abc import Sequence

from maml.run.cli import parse_train_args, run_training
from maml.run.errors import run_cli
from maml_rl.config import TrainConfig
from maml_rl.trainer import train


def main(argv: Sequence[str] | None = None) -> int:
    config, run_dir, resume = parse_train_args(
        argv,
        TrainConfig,
        prog="python -m maml_rl.train",
        description="Meta-train a policy with MAML-TRPO. Settings: flags > --config file > the "
        "env's preset in configs/ > built-in defaults (the MAML paper's locomotion settings).",
        name_field="env",
    )
    return run_training(train, config, run_dir, resume)


if __name__ == "__main__":
    run_cli(main)
