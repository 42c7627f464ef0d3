"""A collection of image classes held as one padded uint8 tensor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class ClassImages:
    """Images (classes, slots, H, W[, C]) uint8; ``counts[c]`` slots of class c are real."""

    images: torch.Tensor
    counts: torch.Tensor
    names: list[str]  # one per class, e.g. "set/alphabet/character" or "split/wnid"

    def subset(self, keep: list[int]) -> ClassImages:
        """The classes at the positions ``keep``."""
        index = torch.tensor(keep, dtype=torch.long)
        return ClassImages(self.images[index], self.counts[index], [self.names[i] for i in keep])


def load_cached(path: Path) -> ClassImages | None:
    """The classes saved at ``path`` by :func:`save_cached`, or None if there is no cache yet."""
    if not path.is_file():
        return None
    state = torch.load(path, weights_only=True)
    return ClassImages(state["images"], state["counts"], state["names"])


def save_cached(path: Path, classes: ClassImages) -> None:
    """Save decoded classes for the next run (written whole, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"images": classes.images, "counts": classes.counts, "names": classes.names}, tmp)
    tmp.replace(path)
