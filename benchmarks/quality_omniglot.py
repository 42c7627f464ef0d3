"""Omniglot quality on real data: meta-train on images_background_small1 only, meta-test on
images_background_small2 only (600 tasks, mean and 95% CI), with the training time.

The settings are chosen to fit one hour on a 2-core CPU (MAML++'s meta-batch 8 instead of the
paper's 32 and 16); the run is the plain training command, so it can be reproduced by hand.

    python -m benchmarks.quality_omniglot --ways 5 [--run runs/...] [--write]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from benchmarks.results import write_section
from maml.checkpoint import load_checkpoint
from maml_sl.evaluate import evaluate, format_table, load_run

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"
# Per N-way: training flags that fit an hour here, and the aim of our issue. 5-way runs about 2
# iterations/s. For 20-way, five steps of 0.1 (the paper's) cost 2.1x the time of one step of 0.4
# per iteration; at equal wall time one step was ahead in a 4-minute pilot (validation accuracy
# 70.6% after 200 iterations against 64.7% after 100), so it takes one step, and 5 query images
# per class instead of 15 (the query forward and backward dominate the cost). Its first hour-long
# run (fixed inner lr) reached 84.99% +- 0.35 with validation flat from iteration 2000 on: small1's
# 122 training characters overfit. Learning the inner step sizes per layer (LSLR) did worse
# (82.45%); random shifts of up to 2 pixels per training image (--shift 2) lifted it to 89.93%
# in 50 minutes (see RESULTS.md).
SETTINGS = {
    5: (
        ["--inner-steps", "1", "--inner-lr", "0.4", "--meta-batch", "8", "--query", "15"]
        + ["--iterations", "6000"],
        0.95,
    ),
    20: (
        ["--inner-steps", "1", "--inner-lr", "0.4", "--meta-batch", "8", "--query", "5"]
        + ["--iterations", "3800", "--shift", "2"],
        0.85,
    ),
}

TEST_QUERY = 15  # query images per class at meta-test, whatever the training used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ways", type=int, choices=sorted(SETTINGS), default=5)
    parser.add_argument("--run", help="a finished run to evaluate instead of training a new one")
    parser.add_argument("--data", default=str(DATA), help="folder with the small1/small2 zips")
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    flags, aim = SETTINGS[args.ways]
    run = Path(args.run or f"runs/bench-omniglot-{args.ways}way")
    if not args.run:
        command = [sys.executable, "-m", "maml_sl.train", "--task", "omniglot", "--data", args.data]
        command += ["--train-on", "images_background_small1", "--test-on"]
        command += ["images_background_small2", "--ways", str(args.ways), "--shots", "1"]
        command += ["--val-every", "1000", "--val-tasks", "50"]
        subprocess.run(command + flags + ["--run-dir", str(run)], check=True)
    state = load_checkpoint(run / "checkpoint.pt")
    minutes = state["elapsed"] / 60
    learner, setup, config = load_run(run, "cpu")
    steps = (1, 3, 5, 10)
    results = evaluate(learner, setup, [1], steps, args.tasks, TEST_QUERY)["accuracy"]
    table = format_table(results, args.tasks, "accuracy", percent=True)
    best = max(results[1, s][0] for s in steps)
    summary = (
        f"{args.ways}-way 1-shot, meta-trained on small1 only and tested on small2 only: "
        f"{config.iterations} iterations ({state['iteration']} done), meta-batch "
        f"{config.meta_batch}, {config.inner_steps} inner step(s) of {config.inner_lr}"
        f"{f' (learned {config.learn_inner_lr})' if config.learn_inner_lr != 'none' else ''}, "
        f"{'first' if config.first_order else 'second'} order, {config.query} query images per "
        f"class in training ({TEST_QUERY} at test)"
        f"{f', random shifts of up to {config.shift} pixels' if config.shift else ''}; "
        f"trained in {minutes:.0f} minutes. "
        f"Best accuracy {best:.2%} (aim {aim:.0%})."
    )
    print(table)
    print(summary)
    if args.write:
        write_section(
            f"quality_omniglot ({args.ways}-way 1-shot)",
            f"{summary}\n\n```\n{table}\n```",
            __spec__.name,
        )


if __name__ == "__main__":
    main()
