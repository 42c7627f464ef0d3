"""``python -m maml_sl.evaluate RUN``: meta-test a trained run on new tasks (mean and 95% CI)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from maml.checkpoint import load_checkpoint
from maml.config import from_dict, read_toml
from maml.errors import UsageError, run_cli
from maml.learner import MAML
from maml.runs import DEVICES, mean_and_ci95, resolve_device
from maml_sl.config import TrainConfig
from maml_sl.tasks import TaskSetup
from maml_sl.trainer import build_learner

# (K, steps) -> (mean, 95% CI half-width, median, tasks whose loss ended above its value before)
Results = dict[tuple[int, int], tuple[float, float, float, int]]


def load_run(run_dir: str | Path, device: str = "auto") -> tuple[MAML, TaskSetup, TrainConfig]:
    """The trained meta-learner of a run directory, its task family and its configuration."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} does not exist")
    config_path = run_dir / "config.toml"
    if not config_path.is_file():
        raise UsageError(f"{run_dir} is not a run directory ({config_path} missing)")
    config = from_dict(TrainConfig, read_toml(config_path), str(config_path))
    torch_device = resolve_device(device)
    state = load_checkpoint(run_dir / "checkpoint.pt", map_location=torch_device)
    learner, setup = build_learner(config, torch_device)
    try:
        learner.load_state_dict(state["learner"])
    except (KeyError, RuntimeError) as error:
        raise UsageError(f"{run_dir}/checkpoint.pt does not match {config_path}: {error}") from None
    return learner, setup, config


def evaluate(
    learner: MAML,
    setup: TaskSetup,
    shots: Sequence[int] = (5, 10, 20),
    steps: Sequence[int] = (1, 5, 10),
    tasks: int = 600,
    query: int = 100,
    seed: int = 1,
    chunk: int = 100,
) -> Results:
    """Query loss after each of ``steps`` inner steps on ``tasks`` new tasks per K in ``shots``."""
    for name, values in {"shots": shots, "tasks": [tasks], "query": [query]}.items():
        bad = [v for v in values if v <= 0]
        if bad:
            raise UsageError(f"--{name} must be positive, got {bad[0]}")
    if min(steps) < 0:
        raise UsageError(f"--steps must be zero or more, got {min(steps)}")
    device = next(learner.parameters()).device
    results: Results = {}
    for k in shots:
        generator = torch.Generator(device).manual_seed(seed + 1000 * k)
        losses = []
        for start in range(0, tasks, chunk):
            support, queries = setup.test_sampler.sample(
                min(chunk, tasks - start), k, query, generator
            )
            with torch.no_grad():
                losses.append(learner.step_losses(support, queries, steps=max(steps)))
        per_task = torch.cat(losses)
        worse = ~(per_task <= per_task[:, :1])  # NaN counts as worse
        for s in steps:
            mean, ci = mean_and_ci95(per_task[:, s])
            median = float(per_task[:, s].double().nanmedian())
            results[(k, s)] = (mean, ci, median, int(worse[:, s].sum()))
    return results


def format_table(results: Results, tasks: int, loss_name: str) -> str:
    """A plain-text table: one row per K, one column per number of inner steps."""
    shots = sorted({k for k, _ in results})
    steps = sorted({s for _, s in results})
    header = ["K \\ steps"] + [f"{s} step{'s' if s > 1 else ''}" for s in steps]
    rows = [
        [str(k)] + [f"{results[k, s][0]:.4f} ± {results[k, s][1]:.4f}" for s in steps]
        for k in shots
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"query {loss_name} on {tasks} new tasks per K (mean ± 95% confidence interval)"]
    for row in [header, *rows]:
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    last = steps[-1]
    for k in shots:
        _, _, median, worse = results[k, last]
        if worse:
            lines.append(
                f"K = {k}: {worse} of {tasks} tasks end above their pre-adaptation loss after "
                f"{last} steps (the step size is too large for them); median {median:.4f}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maml_sl.evaluate",
        description="Adapt a trained model on new tasks and report the query loss after each "
        "number of inner steps (the MAML paper's protocol, training inner learning rate).",
    )
    parser.add_argument("run", help="run directory (holds config.toml and checkpoint.pt)")
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10, 20], help="support sizes K")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5, 10], help="inner steps")
    parser.add_argument("--tasks", type=int, default=600, help="new tasks per K")
    parser.add_argument("--query", type=int, default=100, help="query points per task")
    parser.add_argument("--seed", type=int, default=1, help="seed of the test tasks")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    args = parser.parse_args(argv)
    learner, setup, config = load_run(args.run, args.device)
    results = evaluate(learner, setup, args.shots, args.steps, args.tasks, args.query, args.seed)
    print(format_table(results, args.tasks, "MSE" if config.task == "sinusoid" else "loss"))
    return 0


if __name__ == "__main__":
    run_cli(main)
