"""Sinusoid quality: query MSE on 600 new tasks after 1, 5, 10 steps for K = 5, 10, 20.

Trains with the default command (`python -m maml_sl.train --task sinusoid`, the paper's settings)
unless --run names a finished run, then evaluates it and sets the figures beside the MAML paper's.

    python -m benchmarks.quality_sinusoid [--run runs/sinusoid-...] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.results import write_section
from benchmarks.training import run_training
from maml.run.checkpoint import load_checkpoint
from maml_sl.evaluate import evaluate, format_table, load_run

# MAML paper (Finn et al. 2017), K = 5 sinusoid: MSE after 1, 5 and 10 steps, as our issue cites.
PAPER_K5 = {1: 0.67, 5: 0.38, 10: 0.35}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a finished run to evaluate instead of training a new one")
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--shots", type=int, help="train with this K instead of the preset's")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run = Path(args.run) if args.run else Path("runs") / f"bench-sinusoid-{stamp}"
    if not args.run:
        command = [sys.executable, "-m", "maml_sl.train", "--task", "sinusoid"]
        command += ["--run-dir", str(run)] + (["--shots", str(args.shots)] if args.shots else [])
        run_training(command)
    state = load_checkpoint(run / "checkpoint.pt")
    minutes = state["elapsed"] / 60
    learner, setup, config = load_run(run, "cpu")
    results = evaluate(learner, setup, (5, 10, 20), (1, 5, 10), tasks=args.tasks)["loss"]
    table = format_table(results, args.tasks, "MSE")
    print(table)
    print(f"training: {state['iteration']} iterations in {minutes:.1f} minutes")
    paper = " / ".join(f"{PAPER_K5[s]:.2f}" for s in (1, 5, 10))
    ours = " / ".join(f"{results[5, s][0]:.2f}" for s in (1, 5, 10))
    medians = " / ".join(f"{results[5, s][2]:.2f}" for s in (1, 5, 10))
    ours = f"mean {ours} (median {medians})"
    print(f"K = 5 after 1 / 5 / 10 steps: ours {ours}, MAML paper {paper}")
    if args.write:
        body = (
            f"Run: {config.iterations} iterations, meta-batch {config.meta_batch}, K = "
            f"{config.shots}, inner lr {config.inner_lr}, {config.inner_steps} inner step(s), "
            f"{'first' if config.first_order else 'second'} order; trained in {minutes:.1f} "
            f"minutes (training loop wall time, validation and figures included).\n\n"
            f"```\n{table}\n```\n\nK = 5 after 1 / 5 / 10 steps: ours {ours}; MAML paper {paper}."
        )
        write_section(f"quality_sinusoid (trained with K = {config.shots})", body, __spec__.name)


if __name__ == "__main__":
    main()
