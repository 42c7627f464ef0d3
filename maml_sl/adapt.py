"""``python -m maml_sl.adapt RUN --support DIR --query DIR``: adapt a trained classifier to your
own classes from a few labelled images, then predict (file, class, probability) as CSV.

The support folder holds one sub-folder per class with a few images each; the query folder holds
the images to classify. The model normalises with the statistics of each batch (BatchNorm as in
MAML), so the query images are classified together.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from maml.run.devices import DEVICES
from maml.run.errors import UsageError, run_cli, show_messages
from maml_sl.data.images import decode
from maml_sl.tasks import ImageFormat
from maml_sl.trained import load_run

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
log = logging.getLogger(__name__)


def read_images(files: Sequence[Path], image: ImageFormat) -> torch.Tensor:
    """Images as the model saw them in training: (n, channels, size, size) floats in [0, 1]."""
    arrays = []
    for path in files:
        array = decode(path.read_bytes(), image.size, image.mode, str(path))
        arrays.append(255 - array if image.invert else array)
    x = torch.from_numpy(np.stack(arrays)).float().div_(255)
    return x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def predict(
    run: str | Path,
    support: str | Path,
    query: str | Path,
    steps: int | None = None,
    device: str = "auto",
) -> list[tuple[str, str, float]]:
    """Adapt the run's model on ``support`` (a folder per class) and classify ``query`` images.

    Returns ``(query file, predicted class folder, probability)`` for every query image.
    Example: ``predict("runs/omniglot-...", "my_support", "my_queries", steps=3)``.
    """
    learner, setup, config = load_run(run, device)
    image = setup.image
    if image is None:
        raise UsageError(f"{run} is a {config.task} run; adapt needs an image classification run")
    support, query = Path(support), Path(query)
    for folder, what in ((support, "--support"), (query, "--query")):
        if not folder.is_dir():
            raise UsageError(f"{what} {folder} is not a folder")
    classes = sorted(p for p in support.iterdir() if p.is_dir())
    if not classes:
        raise UsageError(f"--support {support} has no class folders (one folder per class)")
    if len(classes) > config.ways:
        raise UsageError(
            f"--support {support} has {len(classes)} classes; the model was trained "
            f"{config.ways}-way, so at most {config.ways}"
        )
    files, labels = [], []
    for label, folder in enumerate(classes):
        images = _images_in(folder)
        if not images:
            raise UsageError(f"class folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
        files += images
        labels += [label] * len(images)
    query_files = _images_in(query)
    if not query_files:
        raise UsageError(f"--query {query} has no images ({', '.join(IMAGE_SUFFIXES)})")
    target = next(learner.parameters()).device
    xs = read_images(files, image).to(target)
    ys = torch.tensor(labels, device=target)
    xq = read_images(query_files, image).to(target)
    steps = max(3, config.inner_steps) if steps is None else steps
    if steps < 0:
        raise UsageError(f"--steps must be zero or more, got {steps}")
    log.info(
        "adapting on %d images of %d classes (%d steps), then classifying %d images",
        len(files),
        len(classes),
        steps,
        len(query_files),
    )
    with torch.no_grad():
        adapted = learner.adapt((xs[None], ys[None]), steps)  # one task
        probabilities = learner.functional({n: p[0] for n, p in adapted.items()})(xq)[
            :, : len(classes)
        ].softmax(-1)
    best, index = probabilities.max(-1)
    return [
        (str(f), classes[i].name, float(p))
        for f, i, p in zip(query_files, index.tolist(), best.tolist(), strict=True)
    ]


@show_messages("maml.run.saved", log.name)
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maml_sl.adapt", description=__doc__, allow_abbrev=False
    )
    parser.add_argument("run", help="a classification run directory")
    parser.add_argument("--support", required=True, help="folder with one sub-folder per class")
    parser.add_argument("--query", required=True, help="folder of images to classify")
    parser.add_argument(
        "--steps", type=int, help="inner steps (default: 3, or the run's if it trained with more)"
    )
    parser.add_argument("--output", help="CSV file to write (default: standard output)")
    parser.add_argument(
        "--device", default="auto", choices=DEVICES, help="auto: CUDA when present (default: auto)"
    )
    args = parser.parse_args(argv)
    rows = predict(args.run, args.support, args.query, args.steps, args.device)
    handle = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(handle)
        writer.writerow(["file", "class", "probability"])
        writer.writerows((f, c, f"{p:.4f}") for f, c, p in rows)
    finally:
        if args.output:
            handle.close()
    return 0


if __name__ == "__main__":
    run_cli(main)
