"""MiniImageNet in the layout of Ravi & Larochelle (2017): ``images/`` plus ``train.csv``,
``val.csv`` and ``test.csv`` (columns ``filename,label``), each split's classes read once into
one uint8 tensor of 84x84 RGB images (optionally cached). Nothing is written to the data folder.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import torch

from maml.run.errors import UsageError
from maml_sl.data.classes import ClassImages, load_cached, save_cached
from maml_sl.data.images import decode

IMAGE_SIZE = 84
SPLITS = ("train", "val", "test")


def read_split_csv(path: Path) -> dict[str, list[str]]:
    """label -> file names, in file order."""
    if not path.is_file():
        raise UsageError(
            f"MiniImageNet split file {path} is missing (expected {', '.join(SPLITS)})"
        )
    classes: dict[str, list[str]] = {}
    with path.open(newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:2]] != ["filename", "label"]:
            raise UsageError(f"{path} must start with the header 'filename,label', got {header}")
        for number, row in enumerate(rows, start=2):
            if len(row) < 2:
                raise UsageError(f"{path} line {number}: expected 'filename,label', got {row}")
            classes.setdefault(row[1], []).append(row[0])
    if not classes:
        raise UsageError(f"{path} lists no images")
    return classes


def load_miniimagenet(
    path: str | Path, split: str, size: int = IMAGE_SIZE, cache_dir: str | Path | None = None
) -> ClassImages:
    """The classes of one split: images (classes, 600, size, size, 3) uint8."""
    root = Path(path)
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is unknown; allowed: {SPLITS}")
    if not root.is_dir():
        raise UsageError(f"MiniImageNet data path {root} is not a folder")
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise UsageError(f"{root} has no images/ folder (the Ravi & Larochelle layout)")
    table = root / f"{split}.csv"
    classes = read_split_csv(table)
    cache = None
    if cache_dir is not None:
        stat = table.stat()
        key = f"{table.resolve()}:{stat.st_mtime_ns}:{stat.st_size}:{size}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"miniimagenet-{split}-{digest}.pt"
        cached = load_cached(cache)
        if cached is not None:
            return cached
    most = max(len(files) for files in classes.values())
    images = np.zeros((len(classes), most, size, size, 3), dtype=np.uint8)
    counts = []
    for c, (_label, files) in enumerate(sorted(classes.items())):
        for i, name in enumerate(files):
            file = images_dir / name
            if not file.is_file():
                raise UsageError(f"{table} lists {name}, but {file} does not exist")
            images[c, i] = decode(file.read_bytes(), size, "RGB", str(file))
        counts.append(len(files))
    result = ClassImages(
        torch.from_numpy(images), torch.tensor(counts), [f"{split}/{k}" for k in sorted(classes)]
    )
    if cache is not None:
        save_cached(cache, result)
    return result
