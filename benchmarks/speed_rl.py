"""Wall time of one MAML-TRPO meta-iteration, split into sampling, adaptation and the meta-update,
at a preset's size; and the cost of the Fisher-vector products on a fraction of the episodes.

    python -m benchmarks.speed_rl [--env halfcheetah-vel] [--iterations 2]
        [--fractions 1.0 0.5 0.2] [--device cpu] [--write]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from benchmarks.results import write_section
from maml.cli import PRESETS
from maml.config import read_toml
from maml_rl.config import TrainConfig
from maml_rl.meta_update import trpo_step
from maml_rl.trainer import build, sample_iteration, trpo_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="halfcheetah-vel")
    parser.add_argument("--iterations", type=int, default=2, help="timed iterations per setting")
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    config = TrainConfig(**{**read_toml(PRESETS / f"{args.env}.toml"), "device": args.device})
    device = torch.device(args.device)
    learner, sampler = build(config, device)
    rows = [
        "| Fisher fraction | sampling s | adaptation s | meta-update s | iteration s | steps/s |"
    ]
    rows.append("|---|---|---|---|---|---|")
    for fraction in args.fractions:
        settings = dataclasses.replace(trpo_settings(config), fisher_fraction=fraction)
        totals = {"sampling": [], "adaptation": [], "meta_update": [], "iteration": []}
        for iteration in range(args.iterations):
            started = time.perf_counter()
            before = sampler.steps_taken
            train, valid, times = sample_iteration(learner, sampler, config, iteration, device)
            update = time.perf_counter()
            trpo_step(learner, train, valid, settings, torch.Generator().manual_seed(iteration))
            if device.type == "cuda":
                torch.cuda.synchronize()
            times["meta_update"] = time.perf_counter() - update
            times["iteration"] = time.perf_counter() - started
            for key, value in times.items():
                totals[key].append(value)
            steps = sampler.steps_taken - before
        median = {k: float(np.median(v)) for k, v in totals.items()}
        line = (
            f"| {fraction} | {median['sampling']:.2f} | {median['adaptation']:.2f} | "
            f"{median['meta_update']:.2f} | {median['iteration']:.2f} | "
            f"{steps / median['sampling']:,.0f} |"
        )
        print(line, flush=True)
        rows.append(line)
    sampler.close()
    body = (
        f"{args.env} preset: {config.meta_batch} tasks x {config.rollouts} episodes x "
        f"{sampler.horizon} steps, sampled twice per iteration ({steps:,} env steps); policy "
        f"2x{config.hidden} {config.activation}; update on {args.device}; median of "
        f"{args.iterations} iterations per row (untrained policy).\n\n" + "\n".join(rows)
    )
    if args.write:
        write_section(f"speed_rl ({args.env}, {args.device})", body, __spec__.name)


if __name__ == "__main__":
    main()
