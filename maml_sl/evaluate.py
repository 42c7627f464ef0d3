"""``python -m maml_sl.evaluate RUN``: meta-test a trained run on new tasks (mean and 95% CI)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from maml.learner import MAML
from maml.run.devices import DEVICES
from maml.run.errors import UsageError, run_cli, show_messages
from maml.run.stats import mean_and_ci95
from maml_sl.tasks import TaskSetup
from maml_sl.trained import load_run

# (K, steps) -> (mean, 95% CI half-width, median, tasks whose loss ended above its value before)
Results = dict[tuple[int, int], tuple[float, float, float, int]]


def evaluate(
    learner: MAML,
    setup: TaskSetup,
    shots: Sequence[int] = (5, 10, 20),
    steps: Sequence[int] = (1, 5, 10),
    tasks: int = 600,
    query: int = 100,
    seed: int = 1,
    chunk: int = 100,
    sampler=None,
) -> dict[str, Results]:
    """Every query measure after each of ``steps`` inner steps on ``tasks`` new tasks per K.

    Tasks come from ``sampler`` (the run's meta-test tasks by default); the result maps each of
    the task's measure names (``loss``, and ``accuracy`` for classification) to its table.
    """
    for name, values in {"shots": shots, "tasks": [tasks], "query": [query]}.items():
        bad = [v for v in values if v <= 0]
        if bad:
            raise UsageError(f"--{name} must be positive, got {bad[0]}")
    if min(steps) < 0:
        raise UsageError(f"--steps must be zero or more, got {min(steps)}")
    sampler = sampler or setup.test_sampler
    results: dict[str, Results] = {name: {} for name in setup.measure_names}
    for k in shots:
        if hasattr(sampler, "check_sizes"):
            sampler.check_sizes(k, query, "the meta-test split")
        # A CPU generator: the same test tasks whatever the device.
        generator = torch.Generator().manual_seed(seed + 1000 * k)
        values = []
        for start in range(0, tasks, chunk):
            support, queries = sampler.sample(min(chunk, tasks - start), k, query, generator)
            with torch.no_grad():
                v = learner.step_losses(support, queries, steps=max(steps), measure=setup.measure)
            values.append(v if v.dim() == 3 else v.unsqueeze(-1))
        per_task = torch.cat(values)  # (tasks, steps + 1, measures)
        for m, name in enumerate(setup.measure_names):
            measured = per_task[..., m]
            worse = ~(measured <= measured[:, :1])  # NaN counts as worse
            for s in steps:
                mean, ci = mean_and_ci95(measured[:, s])
                median = float(measured[:, s].double().nanmedian())
                results[name][(k, s)] = (mean, ci, median, int(worse[:, s].sum()))
    return results


def format_table(results: Results, tasks: int, name: str, percent: bool = False) -> str:
    """A plain-text table: one row per K, one column per number of inner steps."""
    shots = sorted({k for k, _ in results})
    steps = sorted({s for _, s in results})
    scale, digits = (100, 2) if percent else (1, 4)
    header = ["K \\ steps"] + [f"{s} step{'s' if s != 1 else ''}" for s in steps]
    rows = [
        [str(k)]
        + [
            f"{results[k, s][0] * scale:.{digits}f} ± {results[k, s][1] * scale:.{digits}f}"
            for s in steps
        ]
        for k in shots
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    unit = " (%)" if percent else ""
    lines = [f"query {name}{unit} on {tasks} new tasks per K (mean ± 95% confidence interval)"]
    for row in [header, *rows]:
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    last = steps[-1]
    for k in shots:
        _, _, median, worse = results[k, last]
        if worse and not percent:
            lines.append(
                f"K = {k}: {worse} of {tasks} tasks end above their pre-adaptation {name} after "
                f"{last} steps (the step size is too large for them); median {median:.4f}"
            )
    return "\n".join(lines)


@show_messages("maml.run.saved")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maml_sl.evaluate",
        description="Adapt a trained model on new tasks from the meta-test split and report the "
        "query loss (and accuracy) after each number of inner steps, with the training inner "
        "learning rate (the MAML paper's protocol).",
        allow_abbrev=False,
    )
    parser.add_argument("run", help="run directory (holds config.toml and checkpoint.pt)")
    parser.add_argument(
        "--shots",
        type=int,
        nargs="+",
        help="support sizes K (default: 5 10 20 for sinusoid, the run's K for images)",
    )
    parser.add_argument(
        "--ways",
        type=int,
        nargs="+",
        help="classes per task, at most the run's (default: the run's)",
    )
    parser.add_argument(
        "--steps", type=int, nargs="+", help="inner steps (default: 1 5 10; images: 1 3 5 10)"
    )
    parser.add_argument(
        "--tasks", type=int, default=600, help="new tasks per K (default: %(default)s)"
    )
    parser.add_argument(
        "--query",
        type=int,
        help="query examples per task or class (default: 100 for sinusoid, the run's for images)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the test tasks (default: %(default)s)"
    )
    parser.add_argument(
        "--device", default="auto", choices=DEVICES, help="auto: CUDA when present (default: auto)"
    )
    args = parser.parse_args(argv)
    learner, setup, config = load_run(args.run, args.device)
    if config.task == "sinusoid":
        if args.ways:
            raise UsageError("--ways is for classification runs; this run is sinusoid regression")
        results = evaluate(
            learner,
            setup,
            args.shots or [5, 10, 20],
            args.steps or [1, 5, 10],
            args.tasks,
            args.query or 100,
            args.seed,
        )
        print(format_table(results["loss"], args.tasks, "MSE"))
        return 0
    print(f"{config.task}: {setup.describe_split()}")
    for ways in args.ways or [config.ways]:
        if not 0 < ways <= config.ways:
            raise UsageError(
                f"--ways {ways}: the model was trained {config.ways}-way; allowed 1..{config.ways}"
            )
        test = setup.test_sampler
        sampler = type(test)(test.images, test.counts, ways, test.rotations, "the meta-test split")
        results = evaluate(
            learner,
            setup,
            args.shots or [config.shots],
            args.steps or [1, 3, 5, 10],
            args.tasks,
            args.query or config.query,
            args.seed,
            sampler=sampler,
        )
        print(f"{ways}-way")
        print(format_table(results["accuracy"], args.tasks, "accuracy", percent=True))
    return 0


if __name__ == "__main__":
    run_cli(main)
