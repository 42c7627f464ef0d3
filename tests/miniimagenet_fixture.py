"""A tiny MiniImageNet layout: images/ of coloured noise JPEGs and the three split CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SPLIT_CLASSES = {"train": 4, "val": 2, "test": 3}


def write_miniimagenet(root: Path, per_class: int = 5, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    n = 0
    for split, classes in SPLIT_CLASSES.items():
        rows = ["filename,label"]
        for c in range(classes):
            label = f"n{seed:02d}{split}{c:03d}"
            colour = rng.integers(0, 256, size=3)
            for _ in range(per_class):
                name = f"{label}{n:08d}.jpg"
                pixels = np.clip(colour + rng.normal(0, 30, (90, 100, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(root / "images" / name)
                rows.append(f"{name},{label}")
                n += 1
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root
