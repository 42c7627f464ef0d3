"""MAML-RL quality against the MAML paper's table: train a preset, then average return on 40 new
tasks after 0, 1, 2 and 3 inner steps, with the wall-clock training time.

Long runs: start it in the background; if it stops, run the same command again and training
resumes from the run's checkpoint.

    python -m benchmarks.quality_rl --env navigation-2d [--iterations N] [--rollouts N] [--write]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

from benchmarks.results import write_section
from maml.checkpoint import load_checkpoint
from maml.runs import mean_and_ci95
from maml_rl.evaluate import (
    TEST_PROTOCOLS,
    default_rollouts,
    default_step_sizes,
    format_returns,
    load_run,
    returns_after_steps,
)

# Finn et al. 2017, table in section 5.3 (navigation, HalfCheetah velocity) and the authors' result
# files behind their figures (cbfinn/maml_rl, icml/*.pkl: 40 test tasks): average return after
# 0, 1, 2, 3 steps (MAML).
PAPER = {
    "navigation-2d": (-40.41, -11.68, -3.33, -3.23),
    "halfcheetah-vel": (-129.5, -78.6, -66.6, -60.8),
    "halfcheetah-dir": (-50.69, 293.19, 313.48, 315.65),
    "ant-vel": (30.58, 96.74, 100.06, 101.41),
    "ant-dir": (8.66, 499.15, 500.68, 499.11),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(PAPER), default="navigation-2d")
    parser.add_argument("--iterations", type=int, help="meta-iterations (the preset's by default)")
    parser.add_argument(
        "--rollouts", type=int, help="episodes per task in training (the preset's by default)"
    )
    parser.add_argument("--run", help="run directory (default runs/bench-rl-ENV)")
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument(
        "--rllab-sampler",
        action="store_true",
        help="also evaluate as the authors' test scripts sampled: lanes run episodes back to back "
        "until the script's env steps per task and step, mean over the completed episodes "
        "(differs where episodes end early, as in navigation-2d and the Ant families)",
    )
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    run = Path(args.run or f"runs/bench-rl-{args.env}")
    extra = ["--iterations", str(args.iterations)] if args.iterations else []
    extra += ["--rollouts", str(args.rollouts)] if args.rollouts else []
    if (run / "checkpoint.pt").exists():
        command = ["--resume", str(run), *extra]
    else:
        command = ["--env", args.env, "--run-dir", str(run), *extra]
    subprocess.run([sys.executable, "-m", "maml_rl.train", *command], check=True)
    learner, config = load_run(run, torch.device("cpu"))
    state = load_checkpoint(run / "checkpoint.pt")
    minutes = state["elapsed"] / 60
    step_sizes = default_step_sizes(config)
    rollouts = default_rollouts(config)
    budget = TEST_PROTOCOLS[config.env].env_steps
    returns = returns_after_steps(learner, config, args.tasks, 3, step_sizes, 1, rollouts)
    rows = {"ours": returns}
    if args.rllab_sampler:
        rows["ours, rllab's sampler"] = returns_after_steps(
            learner, config, args.tasks, 3, step_sizes, 1, rollouts, budget
        )
    paper = PAPER[args.env]
    table = ["| | 0 steps | 1 step | 2 steps | 3 steps |", "|---|---|---|---|---|"]
    for name, values in rows.items():
        means = [mean_and_ci95(v)[0] for v in values]
        table.append(f"| {name} | " + " | ".join(f"{x:.1f}" for x in means) + " |")
    table.append("| MAML paper | " + " | ".join(f"{x:.1f}" for x in paper) + " |")
    summary = (
        f"{args.env}: {state['iteration']} meta-iterations of {config.meta_batch} tasks x "
        f"{config.rollouts} episodes, trained in {minutes:.0f} minutes on this machine; "
        f"{args.tasks} new test tasks, {rollouts} episodes per task and step, step sizes "
        f"{step_sizes[0]:g} then {step_sizes[1]:g}."
    )
    report = "\n".join(f"{name}: {format_returns(values)}" for name, values in rows.items())
    print(report)
    print(summary)
    if args.write:
        body = f"{summary}\n\n" + "\n".join(table) + f"\n\n```\n{report}\n```"
        write_section(f"quality_rl ({args.env})", body, __spec__.name)


if __name__ == "__main__":
    main()
