"""``python -m maml_rl.train --env halfcheetah-vel``: meta-train a policy with MAML-TRPO."""

from __future__ import annotations

from collections.abc import Sequence

from maml.cli import parse_train_args
from maml.errors import run_cli
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
    try:
        train(config, run_dir, resume=resume)
    except KeyboardInterrupt:
        return 130
    print(f"done: {run_dir}")
    return 0


if __name__ == "__main__":
    run_cli(main)
