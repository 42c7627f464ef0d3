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
from envs import family_class
from maml.checkpoint import load_checkpoint
from maml.runs import mean_and_ci95
from maml_rl.evaluate import default_step_sizes, format_returns, load_run, returns_after_steps

# Finn et al. 2017, table in section 5.3: average return after 0, 1, 2, 3 steps (MAML).
PAPER = {
    "navigation-2d": (-40.41, -11.68, -3.33, -3.23),
    "halfcheetah-vel": (-129.5, -78.6, -66.6, -60.8),
    "halfcheetah-dir": (-50.7, 293.2, 313.5, 315.7),
}
# The authors' test scripts adapt on 4000 env steps per step (VPG batch_size=4000;
# cbfinn/maml_rl maml_examples/test_maml_point.py and test_maml_cheetah.py): 40 episodes of
# 100 steps for navigation, 20 of 200 for HalfCheetah.
TEST_STEPS_PER_STEP = 4000


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
        "until 4000 env steps per task and step, mean over the completed episodes (differs where "
        "episodes end early, as in navigation-2d)",
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
    rollouts = TEST_STEPS_PER_STEP // (config.horizon or family_class(config.env).horizon)
    returns = returns_after_steps(learner, config, args.tasks, 3, step_sizes, 1, rollouts)
    rows = {"ours": returns}
    if args.rllab_sampler:
        rows["ours, rllab's sampler"] = returns_after_steps(
            learner, config, args.tasks, 3, step_sizes, 1, rollouts, TEST_STEPS_PER_STEP
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
