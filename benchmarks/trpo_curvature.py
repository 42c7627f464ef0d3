"""Does the TRPO step's quadratic model of the post-adaptation KL hold? Predicted against reached.

    python -m benchmarks.trpo_curvature [--env halfcheetah-dir] [--init xavier] [--run RUN]
        [--iterations 3] [--fractions 1.0 0.2] [--write]

TRPO sizes its step ``s u`` so that the quadratic model ``0.5 s^2 u^T F u`` of the mean KL equals
``max_kl``, then backtracks until the exact KL is under it. If ``F`` overestimates the curvature
along ``u``, the step ends far inside the trust region. For the surrogate's plain gradient and
the natural direction (conjugate gradient on ``F``), with ``F`` the Gauss-Newton Fisher on each
fraction of the episodes, this measures the exact KL (all valid episodes, through the adaptation)
at the model's full step and at a half and a quarter of it: a ratio of 1 (1/4, 1/16) is a model
that holds. The policy is the preset's, untrained (``--init``), or a run's checkpoint (``--run``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np
import torch
from torch.nn.utils import vector_to_parameters
from torch.utils._pytree import tree_map

from benchmarks.results import write_section
from maml import PerStep
from maml.run.presets import read_preset
from maml_rl.build import build
from maml_rl.config import TrainConfig
from maml_rl.evaluate import load_run
from maml_rl.fisher import gauss_newton_fvp
from maml_rl.losses import surrogate_and_kl
from maml_rl.trainer import sample_iteration
from maml_rl.trpo import conjugate_gradient, flat

SCALES = (1.0, 0.5, 0.25)
SUBSAMPLES = ("episodes", "tasks")  # what a fraction of the Fisher's data takes


def fisher(learner, train, valid, adapted, measure, fraction, subsample, damping, seed):
    """The Gauss-Newton Fisher product on ``fraction`` of each task's episodes, or on all
    episodes of ``fraction`` of the tasks (each task's term exact, their mean unbiased)."""
    generator = torch.Generator().manual_seed(seed)
    if subsample == "tasks" and fraction < 1:
        tasks = valid.mask.shape[0]
        chosen = torch.randperm(tasks, generator=generator)[: max(1, round(fraction * tasks))]
        pick = lambda e: tree_map(lambda x: x.index_select(0, chosen), e)  # noqa: E731
        train, valid = [pick(e) for e in train], pick(valid)
        adapted = [{n: p.index_select(0, chosen) for n, p in a.items()} for a in adapted]
        fraction = 1.0
    return gauss_newton_fvp(learner, train, valid, measure, fraction, damping, generator, adapted)


def kl_ratios(
    config: TrainConfig,
    learner,
    sampler,
    iteration: int,
    fractions: list[float],
    subsamples: list[str],
):
    """Rows (direction, what the Fisher used, [KL reached / KL predicted per scale])."""
    device = torch.device("cpu")
    train, valid, adapted, _ = sample_iteration(learner, sampler, config, iteration, device)
    measure = surrogate_and_kl(type(learner.model))
    params = list(learner.meta_params().values())
    start = flat(params).detach().clone()

    def measures() -> torch.Tensor:
        return learner.step_losses(PerStep(train), valid, record=False, measure=measure)[
            :, -1
        ].mean(0)

    gradient = flat(torch.autograd.grad(measures()[0], params))
    rows = []
    settings = [(f, m) for f in fractions for m in (subsamples if f < 1 else subsamples[:1])]
    for fraction, subsample in settings:
        fvp = fisher(
            learner,
            train,
            valid,
            adapted,
            measure,
            fraction,
            subsample,
            config.cg_damping,
            iteration,
        )
        natural, _ = conjugate_gradient(fvp, gradient, config.cg_iterations)
        for name, direction in (("gradient", gradient), ("natural", natural)):
            step = direction * math.sqrt(
                config.max_kl / (0.5 * (direction @ fvp(direction)).item())
            )
            ratios = []
            for scale in SCALES:
                vector_to_parameters(start - scale * step, params)
                with torch.no_grad():
                    kl = measures()[1].item()
                ratios.append(kl / (config.max_kl * scale**2))
            vector_to_parameters(start, params)
            label = "all" if fraction >= 1 else f"{fraction:g} of the {subsample}"
            rows.append((name, label, ratios))
            print(f"iteration {iteration} {name} {label}: {ratios}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="halfcheetah-dir")
    parser.add_argument("--init", default=None, help="policy init of an untrained policy")
    parser.add_argument("--max-kl", type=float, default=None, help="the preset's by default")
    parser.add_argument("--run", default=None, help="a run whose checkpoint to examine")
    parser.add_argument("--iterations", type=int, default=3, help="batches of episodes")
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.2])
    parser.add_argument(
        "--subsamples",
        nargs="+",
        default=list(SUBSAMPLES),
        choices=SUBSAMPLES,
        help="what a fraction below 1 subsamples: each task's episodes, or the tasks",
    )
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    device = torch.device("cpu")
    if args.run:
        learner, config = load_run(args.run, device)
        _, sampler = build(config, device)
        where = f"the checkpoint of `{args.run}`"
    else:
        preset = read_preset(args.env)
        config = TrainConfig(**{**preset, "device": "cpu"})
        if args.init:
            config = dataclasses.replace(config, init=args.init)
        learner, sampler = build(config, device)
        where = f"an untrained policy ({config.init} init)"
    if args.max_kl:
        config = dataclasses.replace(config, max_kl=args.max_kl)
    found: dict[tuple[str, str], list] = {}
    for iteration in range(args.iterations):
        for name, label, ratios in kl_ratios(
            config, learner, sampler, iteration, args.fractions, args.subsamples
        ):
            found.setdefault((name, label), []).append(ratios)
    sampler.close()
    scales = " | ".join(f"at {s:g} of the step" for s in SCALES)
    rows = [
        f"| direction | Fisher on | {scales} |",
        "|---|---|" + "---|" * len(SCALES),
    ]
    for (name, label), ratios in found.items():
        mean = np.mean(ratios, axis=0)
        low, high = np.min(ratios, axis=0), np.max(ratios, axis=0)
        cells = " | ".join(
            f"{m:.2f} ({lo:.2f}-{hi:.2f})" for m, lo, hi in zip(mean, low, high, strict=True)
        )
        rows.append(f"| {name} | {label} | {cells} |")
    body = (
        f"{config.env}, {where}: {config.meta_batch} tasks x {config.rollouts} episodes, max KL "
        f"{config.max_kl}, {args.iterations} batches of episodes. Exact mean KL after the "
        "adaptation (all valid episodes) over the quadratic model's prediction, at the step "
        "the model sizes to max KL and at fractions of it; mean (range) over the batches. 1.00 "
        "is a model that holds; below 1 the Fisher overestimates the curvature along the "
        "direction and the step stops short of the trust region.\n\n" + "\n".join(rows)
    )
    print(body)
    if args.write:
        label = "trained" if args.run else config.init
        write_section(f"trpo_curvature ({config.env}, {label})", body, __spec__.name)


if __name__ == "__main__":
    main()
