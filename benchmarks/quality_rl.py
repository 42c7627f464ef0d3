"""MAML-RL quality against the MAML authors' figures: train a preset with several seeds, then
average return on one fixed set of new tasks after 0, 1, 2 and 3 inner steps.

Each training seed runs into its own folder, one after another, so each wall time is its own; the
test tasks and episodes are the same for every seed (``evaluate --seed 1``, by the family's test
script: ``maml_rl.evaluate.TEST_PROTOCOLS``). The figure is the mean over seeds, shown with the
spread between seeds beside the authors' single run on 40 tasks and its 95% interval; where
episodes end early (the Ant), the mean episode length after each step follows. Long runs:
start it in the background; if it stops, run the same command again and every seed resumes
from its checkpoint, and a finished seed's evaluation is kept beside its run (``benchmarks.cache``);
with ``--write`` a finished seed's figures also go to ``benchmarks/seeds/`` to be committed, so
that a new machine need not train it again (``benchmarks.seed_records``).
Arguments after ``--`` go to ``maml_rl.train`` (a variant of the preset; the section's name then
says so).

    python -m benchmarks.quality_rl --env halfcheetah-vel [--seeds 0 1 2] [--tasks 200]
        [--iterations N] [--rllab-sampler] [--write] [-- --init xavier ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchmarks.cache import cached_evaluation
from benchmarks.results import machine, write_section
from benchmarks.seed_records import load_seed_record, save_seed_record, seed_record_path
from benchmarks.training import run_training
from maml.learner import MAML
from maml.run.checkpoint import load_checkpoint
from maml.run.stats import mean_and_ci95
from maml_rl.config import TrainConfig
from maml_rl.evaluate import (
    TEST_PROTOCOLS,
    default_rollouts,
    default_step_sizes,
    episode_horizon,
    load_run,
    outcomes_after_steps,
)
from maml_rl.paper import sample_lockstep

# Finn et al. 2017, table in section 5.3 (navigation, HalfCheetah velocity), and the authors'
# result files behind their figures (cbfinn/maml_rl, icml/icml_*_results_maml.pkl, 40 test
# tasks): average return after 0, 1, 2, 3 steps, and the 95% interval over those tasks (1.96
# standard errors of the pkl's task_avg_returns).
PAPER = {
    "navigation-2d": ((-40.41, -11.68, -3.33, -3.23), (4.1, 2.2, 0.6, 0.6)),
    "halfcheetah-vel": ((-129.53, -78.57, -66.62, -60.78), (16.7, 10.0, 9.0, 8.7)),
    "halfcheetah-dir": ((-50.69, 293.19, 313.48, 315.65), (5.8, 17.2, 16.0, 14.0)),
    "ant-vel": ((30.58, 96.74, 100.06, 101.41), (30.4, 21.0, 21.7, 21.3)),
    "ant-dir": ((8.66, 499.15, 500.68, 499.11), (14.4, 32.5, 31.9, 32.9)),
}
TEST_SEED = 1
STEPS = 3


def benchmark_name(env: str, variant: list[str]) -> str:
    """The folder of a family's runs and seed records, the variant's training flags in it."""
    slug = "".join(c if c.isalnum() else "-" for c in " ".join(variant)).strip("-")
    return f"bench-rl-{env}" + (f"-{slug}" if slug else "")


def train_seed(env: str, seed: int, run: Path, iterations: int | None, extra: list[str]) -> None:
    """Train (or resume, or find finished) one seed's run."""
    more = ["--iterations", str(iterations)] if iterations else []
    if (run / "checkpoint.pt").exists():
        command = ["--resume", str(run), *more]
    else:
        command = ["--env", env, "--seed", str(seed), "--run-dir", str(run), *more, *extra]
    run_training([sys.executable, "-m", "maml_rl.train", *command])


def evaluate(
    learner: MAML,
    config: TrainConfig,
    tasks: int,
    step_sizes: list[float],
    rollouts: int,
    budget: int | None,
) -> dict[str, torch.Tensor]:
    """Returns and episode lengths after 0..STEPS steps on the fixed test tasks: ``rollouts``
    whole episodes per task (whatever the run trained with), or the authors' test sampler with
    a ``budget``."""
    whole = dataclasses.replace(config, sampling="episodes")
    sample = None if budget is None else partial(sample_lockstep, budget=budget)
    outcomes = outcomes_after_steps(
        learner, whole, tasks, STEPS, step_sizes, TEST_SEED, rollouts, sample=sample
    )
    return {"returns": outcomes.returns, "lengths": outcomes.lengths}


def cells(values: list[float], digits: int = 1) -> str:
    return " | ".join(f"{v:.{digits}f}" for v in values)


def seed_figures(
    args: argparse.Namespace,
    seed: int,
    run: Path,
    samplers: dict[str, int | None],
    extra: list[str],
) -> dict[str, Any]:
    """Train (or resume) one seed and evaluate it on the fixed test tasks with each sampler."""
    train_seed(args.env, seed, run, args.iterations, extra)
    state = load_checkpoint(run / "checkpoint.pt")
    learner, config = load_run(run, torch.device("cpu"))
    step_sizes, rollouts = default_step_sizes(config), default_rollouts(config)
    outcomes = {}
    for name, budget in samplers.items():
        settings = {
            "tasks": args.tasks,
            "steps": STEPS,
            "step_sizes": list(step_sizes),
            "test_seed": TEST_SEED,
            "rollouts": rollouts,
            "budget": budget,
        }
        outcome, kept = cached_evaluation(
            run,
            settings,
            partial(evaluate, learner, config, args.tasks, step_sizes, rollouts, budget),
        )
        if kept:
            print(f"seed {seed}, {name}: evaluation kept from an earlier run", flush=True)
        outcomes[name] = {
            "returns": outcome["returns"].tolist(),
            "lengths": outcome["lengths"].double().mean(1).tolist(),
        }
    return {
        "seed": seed,
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "iterations": state["iteration"],
        "minutes": state["elapsed"] / 60,
        "meta_batch": config.meta_batch,
        "train_rollouts": config.rollouts,
        "test_rollouts": rollouts,
        "step_sizes": list(step_sizes),
        "horizon": episode_horizon(config),
        "samplers": outcomes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(PAPER), default="navigation-2d")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, help="meta-iterations (the preset's by default)")
    parser.add_argument("--tasks", type=int, default=200, help="test tasks, the same for all")
    parser.add_argument("--runs", help="folder of the runs (default runs/bench-rl-ENV[-variant])")
    parser.add_argument(
        "--rllab-sampler",
        action="store_true",
        help="also evaluate as the authors' test scripts sampled: lanes run episodes back to back "
        "until the script's env steps per task and step, mean over the completed episodes "
        "(differs where episodes end early, as in navigation-2d and the Ant families)",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="update benchmarks/RESULTS.md, and keep each finished seed's figures in "
        "benchmarks/seeds/ (to commit; benchmarks.seed_records)",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train and evaluate every seed here, not taking seeds kept in benchmarks/seeds/",
    )
    args, extra = parser.parse_known_args()
    if extra and extra[0] == "--":
        extra = extra[1:]
    elif extra:
        parser.error(f"unknown arguments {extra}; put training flags after --")
    variant = " ".join(extra)
    benchmark = benchmark_name(args.env, extra)
    runs = Path(args.runs or f"runs/{benchmark}")
    samplers = {"episodes": None}  # name -> env-step budget of the authors' sampler, or None
    if args.rllab_sampler:
        samplers["rllab's sampler"] = TEST_PROTOCOLS[args.env].env_steps
    record_settings = {
        "env": args.env,
        "variant": extra,
        "iterations": args.iterations,
        "tasks": args.tasks,
        "steps": STEPS,
        "test_seed": TEST_SEED,
        "samplers": samplers,
    }
    figures, taken = [], []
    for seed in args.seeds:
        path = seed_record_path(benchmark, seed)
        kept = None if args.retrain else load_seed_record(path, record_settings)
        if kept is None:
            kept = seed_figures(args, seed, runs / f"seed{seed}", samplers, extra)
            if args.write:
                save_seed_record(path, record_settings, runs / f"seed{seed}", kept)
        else:
            print(f"seed {seed}: kept in {path} ({kept['date']}, {kept['machine']})", flush=True)
            trained = ", ".join(c[:7] for c in kept["trained_at"])
            taken.append(
                f"seed {seed} (trained at {trained}, evaluated at {kept['evaluated_at'][:7]})"
            )
        figures.append(kept)
        for name, outcome in kept["samplers"].items():
            means = [f"{mean_and_ci95(torch.tensor(r))[0]:.1f}" for r in outcome["returns"]]
            print(f"seed {seed}, {name}: " + " / ".join(means), flush=True)
    rows = {
        name: [torch.tensor(f["samplers"][name]["returns"], dtype=torch.float64) for f in figures]
        for name in samplers
    }
    lengths = {
        name: [torch.tensor(f["samplers"][name]["lengths"], dtype=torch.float64) for f in figures]
        for name in samplers
    }
    first = figures[0]
    step_sizes, rollouts = first["step_sizes"], first["test_rollouts"]
    paper, paper_ci = PAPER[args.env]
    table = ["| | 0 steps | 1 step | 2 steps | 3 steps |", "|---|---|---|---|---|"]
    verdicts = []
    for name, per_seed in rows.items():
        means = torch.tensor([[mean_and_ci95(r)[0] for r in returns] for returns in per_seed])
        for seed, row in zip(args.seeds, means.tolist(), strict=True):
            table.append(f"| seed {seed}, {name} | {cells(row)} |")
        mean = means.mean(0).tolist()
        spread = means.std(0).tolist() if len(args.seeds) > 1 else [float("nan")] * (STEPS + 1)
        table.append(f"| **mean over seeds**, {name} | {cells(mean)} |")
        table.append(f"| standard deviation between seeds | {cells(spread)} |")
        inside = [
            "within" if abs(m - p) <= c else ("above" if m > p else "below")
            for m, p, c in zip(mean, paper, paper_ci, strict=True)
        ]
        verdicts.append(
            f"{name}: the mean over seeds after 1 / 2 / 3 steps is "
            + " / ".join(inside[1:])
            + " the authors' 95% interval"
        )
    table.append(f"| authors (one run, 40 tasks) | {cells(list(paper))} |")
    table.append(f"| its 95% interval, ± | {cells(list(paper_ci))} |")
    test_cis = {
        name: [max(mean_and_ci95(r[step])[1] for r in per_seed) for step in range(STEPS + 1)]
        for name, per_seed in rows.items()
    }
    protocol = TEST_PROTOCOLS[args.env]
    iterations = sorted({f["iterations"] for f in figures})
    minutes = " / ".join(f"{f['minutes']:.0f}" for f in figures)
    # A kept seed trained in another session, maybe on another host of the same description,
    # so its minutes are only comparable with this run's where all were trained here.
    where = (
        "on this machine (one after another)"
        if not taken and {f["machine"] for f in figures} == {machine()}
        else "("
        + "; ".join(f"seed {f['seed']} on {f['date']} ({f['machine']})" for f in figures)
        + ")"
    )
    summary = (
        f"{args.env}{f' with `{variant}`' if variant else ''}: training seeds "
        f"{', '.join(map(str, args.seeds))}; each {'/'.join(map(str, iterations))} "
        f"meta-iterations of {first['meta_batch']} tasks x {first['train_rollouts']} episodes, "
        f"trained in {minutes} minutes {where}; "
        f"the same {args.tasks} new test tasks for every seed, {rollouts} episodes per "
        f"task and step, step sizes {step_sizes[0]:g} then {step_sizes[1]:g} (the authors' "
        f"`{protocol.script}`). Largest 95% interval over test tasks of a seed's figure: "
        + "; ".join(f"{n} " + " / ".join(f"±{c:.1f}" for c in v) for n, v in test_cis.items())
        + "."
    )
    body = f"{summary}\n\n" + "\n".join(table)
    body += "\n\n" + "\n".join(f"- {v}" for v in verdicts)
    if taken:
        body += (
            f"\n\nTaken from `benchmarks/seeds/{benchmark}/` (the same code, libraries and "
            f"settings; `--retrain` trains them here): {'; '.join(taken)}."
        )
    horizon = first["horizon"]
    mean_lengths = {name: torch.stack(per_seed).mean(0) for name, per_seed in lengths.items()}
    if any((m < horizon).any() for m in mean_lengths.values()):  # episodes that end early
        body += (
            f"\n\nMean episode length (of {horizon} steps) after 0 / 1 / 2 / 3 steps, over seeds "
            "and test tasks: "
            + "; ".join(
                f"{n} " + " / ".join(f"{v:.1f}" for v in m) for n, m in mean_lengths.items()
            )
            + "."
        )
    print(body)
    if args.write:
        name = f"quality_rl ({args.env}{f', {variant}' if variant else ''})"
        write_section(name, body, __spec__.name)


if __name__ == "__main__":
    main()
