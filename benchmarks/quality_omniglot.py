"""Omniglot quality on real data: meta-train on images_background_small1, meta-test on the
alphabets of images_background_small2 that small1 lacks (600 tasks, mean and 95% CI), with the
training time.

small2's Greek and Latin are small1's own files, so only its Japanese (katakana), Sanskrit and
Tagalog (106 characters) are new; the data layer refuses a test side that holds training images.
Accuracy is read after the training's number of inner steps, fixed before testing. The settings
are chosen to fit one hour on a 2-core CPU (MAML++'s meta-batch 8 instead of the paper's 32 and
16); the run is the plain training command, so it can be reproduced by hand.

    python -m benchmarks.quality_omniglot --ways 5 [--run runs/...] [--write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.results import write_section
from benchmarks.training import run_training
from maml.run.checkpoint import load_checkpoint
from maml_sl.evaluate import evaluate, format_table, load_run

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"
TRAIN_ON = "images_background_small1"
TEST_ON = ",".join(
    f"images_background_small2/{a}" for a in ("Japanese_(katakana)", "Sanskrit", "Tagalog")
)
# Per N-way: training flags that fit an hour here, and the aim of our issue. One inner step of 0.4
# for both (for 20-way, the paper's five steps of 0.1 cost 2.1x the time per iteration and were
# behind at equal wall time in a pilot); 5 query images per class in 20-way training (the query
# forward and backward dominate its cost). small1's 122 training characters overfit: random
# shifts of up to 2 pixels per training image and a cosine decay of the meta step size (MAML++)
# counter it. History of these choices: benchmarks/NOTES.md.
SETTINGS = {
    5: (
        ["--inner-steps", "1", "--inner-lr", "0.4", "--meta-batch", "8", "--query", "15"]
        + ["--iterations", "6000", "--shift", "2", "--meta-lr-schedule", "cosine"],
        0.97,
    ),
    20: (
        ["--inner-steps", "1", "--inner-lr", "0.4", "--meta-batch", "8", "--query", "5"]
        + ["--iterations", "4000", "--shift", "2", "--meta-lr-schedule", "cosine"],
        0.90,
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
        command += ["--train-on", TRAIN_ON, "--test-on", TEST_ON]
        command += ["--ways", str(args.ways), "--shots", "1"]
        command += ["--val-every", "1000", "--val-tasks", "50"]
        if (run / "checkpoint.pt").exists():
            command = [sys.executable, "-m", "maml_sl.train", "--resume", str(run)]
        else:
            command += flags + ["--run-dir", str(run)]
        run_training(command)
    state = load_checkpoint(run / "checkpoint.pt")
    minutes = state["elapsed"] / 60
    learner, setup, config = load_run(run, "cpu")
    steps = config.inner_steps
    results = evaluate(learner, setup, [1], [steps], args.tasks, TEST_QUERY)["accuracy"]
    table = format_table(results, args.tasks, "accuracy", percent=True)
    accuracy = results[1, steps][0]
    summary = (
        f"{args.ways}-way 1-shot, meta-trained on {config.train_on} ({len(setup.sampler.images)} "
        f"training characters) and meta-tested on {config.test_on} "
        f"({len(setup.test_sampler.images)} characters no training image is of): "
        f"{config.iterations} iterations ({state['iteration']} done), meta-batch "
        f"{config.meta_batch}, {config.inner_steps} inner step(s) of {config.inner_lr}"
        f"{f' (learned {config.learn_inner_lr})' if config.learn_inner_lr != 'none' else ''}, "
        f"{'first' if config.first_order else 'second'} order, {config.query} query images per "
        f"class in training ({TEST_QUERY} at test)"
        f"{f', random shifts of up to {config.shift} pixels' if config.shift else ''}, "
        f"meta step size {config.meta_lr} ({config.meta_lr_schedule}); trained in {minutes:.0f} "
        f"minutes. Accuracy after the training's {steps} inner step(s), read at that count "
        f"alone: {accuracy:.2%} (aim {aim:.0%}: {'met' if accuracy >= aim else 'not met'})."
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
