"""Wall time of MAML-TRPO meta-iterations at a preset's size, timed as the trainer runs them;
and, on request, the cost and effect of Fisher-vector products on episode subsets, or the
meta-RL algorithms side by side.

    python -m benchmarks.speed_rl [--env halfcheetah-vel] [--warmup 1] [--iterations 5]
        [--device cpu] [--compare-fractions 1.0 0.2] [--algorithms] [--write]

The headline runs the training command's own loop (``maml_rl.trainer.train``, the preset as it
stands) for warm-up plus timed iterations into a scratch run folder and reads each iteration's
wall time from its TensorBoard log: sampling, adaptation, the TRPO step, logging and checkpoints
alike. ``--compare-fractions`` then samples the episodes once per iteration and lets every Fisher
fraction take its TRPO step from the same parameters on them, to compare time and step quality
(surrogate improvement, KL, cosine between the steps) on equal data. ``--algorithms`` times each
algorithm of ``benchmarks.compare_rl`` (its training flags over the family's preset, resolved as
``maml_rl.train`` resolves them) in alternating rounds on one machine, and projects its training
time (median seconds per iteration times its iterations, validations left out): the time ratio
``compare_rl`` takes for its aim, kept in ``benchmarks/seeds/`` with ``--write``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from benchmarks.compare_rl import ALGORITHMS, speed_record_path
from benchmarks.results import commit, machine, write_section
from benchmarks.seed_records import code_changed, code_trees
from maml.run.cli import parse_train_args
from maml.run.presets import read_preset
from maml_rl.build import build
from maml_rl.config import TrainConfig
from maml_rl.meta_update import trpo_step
from maml_rl.trainer import sample_iteration, train, trpo_settings
from maml_rl.trpo import flat

PARTS = ("sampling", "adaptation", "meta_update")


def trainer_iterations(config: TrainConfig, warmup: int) -> dict[str, list[float]]:
    """Seconds of every timed iteration of the trainer, whole and by part, from its log."""
    with tempfile.TemporaryDirectory() as folder:
        train(config, Path(folder))
        events = EventAccumulator(folder).Reload()
        series = {
            name: [e.value for e in events.Scalars(f"time/{name}_seconds") if e.step > warmup]
            for name in ("iteration", *PARTS)
        }
        series["env_steps_per_second"] = [
            e.value for e in events.Scalars("charts/env_steps_per_second") if e.step > warmup
        ]
    return series


def compare_fractions(config: TrainConfig, fractions: list[float], iterations: int) -> list[str]:
    """Table rows: each Fisher fraction's TRPO step on the same episodes and parameters."""
    device = torch.device(config.device)
    learner, sampler = build(config, device)
    start = copy.deepcopy(learner.state_dict())
    found = {f: {"seconds": [], "improvement": [], "kl": [], "cosine": []} for f in fractions}
    for iteration in range(iterations):
        learner.load_state_dict(start)
        episodes, valid, adapted, _ = sample_iteration(learner, sampler, config, iteration, device)
        reference = None
        for fraction in fractions:
            learner.load_state_dict(start)
            trpo = dataclasses.replace(trpo_settings(config), fisher_fraction=fraction)
            started = time.perf_counter()
            stats = trpo_step(
                learner, episodes, valid, trpo, torch.Generator().manual_seed(iteration), adapted
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            update = flat(learner.meta_params().values()) - flat(start.values())
            reference = update if reference is None else reference
            cosine = torch.nn.functional.cosine_similarity(update, reference, dim=0).item()
            for key, value in (
                ("seconds", seconds),
                ("improvement", stats["surrogate_before"] - stats["surrogate_after"]),
                ("kl", stats["kl"]),
                ("cosine", cosine),
            ):
                found[fraction][key].append(value)
            print(f"fraction {fraction}: {seconds:.2f} s", stats, flush=True)
    sampler.close()
    rows = [
        "| Fisher fraction | TRPO step s (median) | surrogate improvement | KL "
        "| cosine to the first row's step |",
        "|---|---|---|---|---|",
    ]
    for fraction, r in found.items():
        rows.append(
            f"| {fraction} | {statistics.median(r['seconds']):.2f} | "
            f"{np.mean(r['improvement']):.2e} | {np.mean(r['kl']):.4f} | "
            f"{np.mean(r['cosine']):.3f} |"
        )
    return rows


def algorithm_config(env: str, flags: list[str], device: str) -> TrainConfig:
    """The config ``maml_rl.train --env ENV FLAGS`` trains with."""
    with tempfile.TemporaryDirectory() as folder:
        argv = ["--env", env, *flags, "--device", device, "--run-dir", folder]
        config, _, _ = parse_train_args(argv, TrainConfig, "speed_rl", "", "env")
    return config


def algorithm_times(
    env: str, device: str, warmup: int, iterations: int, rounds: int
) -> dict[str, dict[str, float]]:
    """Per algorithm: the median seconds of its timed iterations over ``rounds`` alternating
    rounds (each round every algorithm once, in turn), its iterations, the projected minutes."""
    configs = {name: algorithm_config(env, flags, device) for name, flags in ALGORITHMS.items()}
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    for round_ in range(rounds):
        for name, config in configs.items():
            timed = dataclasses.replace(config, iterations=warmup + iterations, val_every=0)
            seconds[name] += trainer_iterations(timed, warmup)["iteration"]
            median = statistics.median(seconds[name])
            print(f"round {round_ + 1}, {name}: {median:.2f} s per iteration", flush=True)
    return {
        name: {
            "seconds_per_iteration": statistics.median(seconds[name]),
            "iterations": configs[name].iterations,
            "minutes": statistics.median(seconds[name]) * configs[name].iterations / 60,
        }
        for name in configs
    }


def algorithms_section(args: argparse.Namespace) -> str:
    """Time the algorithms side by side; with ``--write`` keep the record compare_rl reads."""
    times = algorithm_times(args.env, args.device, args.warmup, args.iterations, args.rounds)
    reference = times["MAML-TRPO"]["minutes"]
    rows = [
        "| algorithm | s per iteration (median) | iterations | projected minutes | / MAML-TRPO's |",
        "|---|---|---|---|---|",
    ]
    for name, t in times.items():
        rows.append(
            f"| {name} | {t['seconds_per_iteration']:.2f} | {t['iterations']} | "
            f"{t['minutes']:.1f} | {t['minutes'] / reference:.2f}x |"
        )
    body = (
        f"{args.env}: each algorithm of compare_rl as `maml_rl.train --env {args.env} FLAGS` "
        f"trains it (update on {args.device}, untrained policy), {args.iterations} timed "
        f"iterations after {args.warmup} untimed, in {args.rounds} alternating rounds; projected "
        "training time: the median iteration times the algorithm's iterations (validations "
        "left out).\n\n" + "\n".join(rows)
    )
    if args.write:
        if code_changed():
            raise SystemExit(
                "commit maml/, maml_rl/, envs/ and configs/ first: the record names the code"
            )
        path = speed_record_path(args.env)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "env": args.env,
            "machine": machine(),
            "code": code_trees(),
            "measured_at": commit(),
            "date": datetime.date.today().isoformat(),
            "algorithms": times,
        }
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {path}: commit it")
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="halfcheetah-vel")
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed iterations first (the first vmap calls and allocations are slower)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--compare-fractions",
        type=float,
        nargs="+",
        default=[],
        help="also compare these Fisher fractions' TRPO steps on the same episodes",
    )
    parser.add_argument(
        "--algorithms",
        action="store_true",
        help="time compare_rl's algorithms side by side instead (the ratio of its aim)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="--algorithms: alternating rounds")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.algorithms:
        body = algorithms_section(args)
        print(body)
        if args.write:
            write_section(f"speed_rl algorithms ({args.env}, {args.device})", body, __spec__.name)
        return
    preset = read_preset(args.env)
    config = TrainConfig(
        **{**preset, "device": args.device, "iterations": args.warmup + args.iterations}
    )
    series = trainer_iterations(config, args.warmup)
    whole = series["iteration"]
    parts = ", ".join(f"{name} {statistics.median(series[name]):.2f} s" for name in PARTS)
    fraction = trpo_settings(config).fisher_fraction
    body = (
        f"{args.env} preset as the trainer runs it ({config.meta_batch} tasks x "
        f"{config.rollouts} episodes, sampled before and after adaptation; policy "
        f"{config.depth}x{config.hidden} {config.activation}; Fisher fraction {fraction}; update "
        f"on {args.device}; untrained policy): {args.iterations} whole iterations after "
        f"{args.warmup} untimed, each from its start to the end of its logging and checkpoint.\n\n"
        f"- iteration: median {statistics.median(whole):.2f} s, mean {np.mean(whole):.2f} s "
        f"(min {min(whole):.2f}, max {max(whole):.2f})\n"
        f"- parts (medians): {parts}; sampling at "
        f"{statistics.median(series['env_steps_per_second']):,.0f} env steps/s"
    )
    if args.compare_fractions:
        rows = compare_fractions(
            dataclasses.replace(config, iterations=args.iterations),
            args.compare_fractions,
            args.iterations,
        )
        body += (
            "\n\nFisher fractions on equal data (each row's TRPO step from the same parameters on "
            f"the same episodes, {args.iterations} iterations; the Gauss-Newton products "
            "`J^T F J` on that fraction of each task's train and valid episodes):\n\n"
            + "\n".join(rows)
        )
    print(body)
    if args.write:
        write_section(f"speed_rl ({args.env}, {args.device})", body, __spec__.name)


if __name__ == "__main__":
    main()
