"""N-way K-shot classification episodes sampled as tensors on the device (no per-image loop)."""

from __future__ import annotations

import torch
from torch import Tensor

from maml.run.errors import UsageError

Batch = tuple[Tensor, Tensor]


class FewShotTasks:
    """Episodes from classes of images held as one uint8 tensor (classes, slots, H, W[, C]).

    ``counts[c]`` images of class c are real (the rest is padding). With ``rotations`` every class
    also appears rotated by 90, 180 and 270 degrees as a class of its own (the MAML paper's
    Omniglot augmentation). With ``shift`` > 0 every sampled image is translated by its own random
    offset of at most ``shift`` pixels in each direction (zero fill). Images come out as float in
    [0, 1], shaped (T, N*K, C, H, W), with labels 0..N-1 assigned to the task's classes in random
    order.
    """

    def __init__(
        self,
        images: Tensor,
        counts: Tensor,
        ways: int,
        rotations: bool = False,
        name: str = "",
        shift: int = 0,
    ) -> None:
        if images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8, got {images.dtype}")
        if shift < 0 or 2 * shift >= min(images.shape[2:4]):
            raise UsageError(
                f"shift {shift} must be at least 0 and below half the image size "
                f"{tuple(images.shape[2:4])}"
            )
        self.shift = shift
        self.images = images
        self.counts = counts.to(images.device)
        self.ways = ways
        self.rotations = rotations
        self.classes = images.shape[0] * (4 if rotations else 1)
        if self.classes < ways:
            raise UsageError(
                f"{name or 'the data'} has {self.classes} classes, fewer than --ways {ways}"
            )

    def check_sizes(self, shots: int, query: int, name: str = "") -> None:
        """Every class must hold ``shots + query`` distinct images."""
        fewest = int(self.counts.min())
        if fewest < shots + query:
            raise UsageError(
                f"{name or 'a class'} has only {fewest} images per class; --shots {shots} plus "
                f"--query {query} need {shots + query}"
            )

    def sample(
        self, n_tasks: int, shots: int, query: int, generator: torch.Generator
    ) -> tuple[Batch, Batch]:
        """``n_tasks`` episodes: support (x, y) with K per class, query (x, y) with Q per class."""
        device = self.images.device
        n, per_class = self.ways, shots + query
        # Drawn on the generator's device (the CPU in training): the same tasks on any device.
        keys = torch.rand((n_tasks, self.classes), generator=generator).to(device)
        chosen = keys.argsort(dim=1)[:, :n]  # (T, N), label = position
        base = chosen % self.images.shape[0]
        slots = self.images.shape[1]
        image_keys = torch.rand((n_tasks, n, slots), generator=generator).to(device)
        real = torch.arange(slots, device=device) < self.counts[base].unsqueeze(-1)
        image_keys = image_keys.masked_fill(~real, 2.0)  # padding sorts last
        picks = image_keys.argsort(dim=-1)[..., :per_class]  # distinct images per class
        x = self.images[base.unsqueeze(-1), picks]  # (T, N, K+Q, H, W[, C])
        if self.rotations:
            turns = chosen // self.images.shape[0]
            x = _rotate(x, turns)
        if self.shift:
            x = _translate(x, self.shift, generator)
        x = x.float().div_(255)
        x = x.unsqueeze(3) if x.dim() == 5 else x.movedim(-1, 3)  # (T, N, K+Q, C, H, W)
        labels = torch.arange(n, device=device).view(1, n, 1).expand(n_tasks, n, per_class)
        support = (x[:, :, :shots].flatten(1, 2), labels[:, :, :shots].flatten(1, 2))
        queries = (x[:, :, shots:].flatten(1, 2), labels[:, :, shots:].flatten(1, 2))
        return support, queries


def _rotate(x: Tensor, turns: Tensor) -> Tensor:
    """Rotate the images of each class (T, N, K, H, W) by ``turns`` (T, N) quarter turns."""
    out = x.clone()
    for k in (1, 2, 3):
        mask = turns == k
        if mask.any():
            out[mask] = torch.rot90(x[mask], k, dims=(-2, -1))
    return out


def _translate(x: Tensor, shift: int, generator: torch.Generator) -> Tensor:
    """Translate every image of (T, N, K, H, W[, C]) by its own offset in [-shift, shift]^2."""
    h, w = x.shape[3], x.shape[4]
    flat = x.reshape(-1, h, w, x.shape[5] if x.dim() == 6 else 1)  # (M, H, W, C)
    m = flat.shape[0]
    offsets = torch.randint(-shift, shift + 1, (m, 2), generator=generator).to(x.device)
    padded = torch.nn.functional.pad(flat, (0, 0, shift, shift, shift, shift))
    rows = offsets[:, :1] + shift + torch.arange(h, device=x.device)  # (M, H)
    cols = offsets[:, 1:] + shift + torch.arange(w, device=x.device)  # (M, W)
    index = torch.arange(m, device=x.device)[:, None, None]
    return padded[index, rows[:, :, None], cols[:, None, :]].reshape(x.shape)
