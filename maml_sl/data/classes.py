"""A collection of image classes held as one padded uint8 tensor."""

from __future__ import annotations

from dataclasses import dataclass

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
