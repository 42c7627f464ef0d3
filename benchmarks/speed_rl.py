"""Wall time of one MAML-TRPO meta-iteration, split into sampling, adaptation and the meta-update,
at a preset's size; and the cost and effect of Fisher-vector products on episode subsets.

    python -m benchmarks.speed_rl [--env halfcheetah-vel] [--warmup 1] [--iterations 2]
        [--fractions 1.0 0.5 0.2] [--tasks-per-product 1 0] [--device cpu] [--write]

Per iteration the episodes are sampled once and every Fisher setting takes its TRPO step from
the same parameters on them, so the rows compare time and step quality (surrogate improvement,
KL, cosine between the steps) on equal data.
"""

from __future__ import annotations

import argparse
import copy
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
from maml_rl.trpo import flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="halfcheetah-vel")
    parser.add_argument("--iterations", type=int, default=2, help="timed iterations")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed iterations first (the first vmap calls and allocations are slower)",
    )
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.2])
    parser.add_argument(
        "--tasks-per-product",
        type=int,
        nargs="+",
        default=[0],
        help="tasks under vmap per Fisher product (0: all, the trainer's default)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    config = TrainConfig(**{**read_toml(PRESETS / f"{args.env}.toml"), "device": args.device})
    device = torch.device(args.device)
    learner, sampler = build(config, device)
    start = copy.deepcopy(learner.state_dict())
    settings = [
        (fraction, chunk) for fraction in args.fractions for chunk in args.tasks_per_product
    ]
    phases = {"sampling": [], "adaptation": []}
    found = {s: {"seconds": [], "improvement": [], "kl": [], "cosine": []} for s in settings}
    for iteration in range(args.warmup + args.iterations):
        timed = iteration >= args.warmup
        before = sampler.steps_taken
        # Every setting updates from the same parameters on the same episodes.
        learner.load_state_dict(start)
        train, valid, adapted, times = sample_iteration(learner, sampler, config, iteration, device)
        steps = sampler.steps_taken - before
        if timed:
            for key in phases:
                phases[key].append(times[key])
        reference = None
        for fraction, chunk in settings:
            learner.load_state_dict(start)
            trpo = dataclasses.replace(
                trpo_settings(config, device),
                fisher_fraction=fraction,
                fisher_tasks_per_product=chunk or None,
            )
            started = time.perf_counter()
            stats = trpo_step(
                learner, train, valid, trpo, torch.Generator().manual_seed(iteration), adapted
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            update = flat(learner.meta_params().values()) - flat(start.values())
            reference = update if reference is None else reference
            cosine = torch.nn.functional.cosine_similarity(update, reference, dim=0).item()
            if timed:
                for key, value in [
                    ("seconds", seconds),
                    ("improvement", stats["surrogate_before"] - stats["surrogate_after"]),
                    ("kl", stats["kl"]),
                    ("cosine", cosine),
                ]:
                    found[(fraction, chunk)][key].append(value)
            print(iteration, fraction, chunk, f"{seconds:.2f} s", stats, flush=True)
    sampler.close()
    sampling = float(np.median(phases["sampling"]))
    adaptation = float(np.median(phases["adaptation"]))
    rows = [
        "| Fisher fraction | tasks per product | meta-update s | iteration s | surrogate "
        "improvement | KL | cosine to first row's step |",
        "|---|---|---|---|---|---|---|",
    ]
    for (fraction, chunk), r in found.items():
        update = float(np.median(r["seconds"]))
        rows.append(
            f"| {fraction} | {chunk or 'all'} | {update:.2f} | "
            f"{sampling + adaptation + update:.2f} | {np.mean(r['improvement']):.2e} | "
            f"{np.mean(r['kl']):.4f} | {np.mean(r['cosine']):.3f} |"
        )
    body = (
        f"{args.env} preset: {config.meta_batch} tasks x {config.rollouts} episodes x "
        f"{sampler.horizon} steps, sampled twice per iteration ({steps:,} env steps); policy "
        f"2x{config.hidden} {config.activation}; update on {args.device}. Sampling "
        f"{sampling:.2f} s ({steps / sampling:,.0f} env steps/s), adaptation (advantages, "
        f"adapted parameters) {adaptation:.2f} s per iteration (medians of {args.iterations} "
        f"iterations after {args.warmup} untimed, untrained policy). Each row's TRPO step "
        "starts from the same parameters on the same episodes; meta-update time is the median, "
        "the rest are means over the iterations.\n\n" + "\n".join(rows)
    )
    print(body)
    if args.write:
        write_section(f"speed_rl ({args.env}, {args.device})", body, __spec__.name)


if __name__ == "__main__":
    main()
