"""Which device a run computes on."""

from __future__ import annotations

import torch

from maml.run.errors import UsageError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a usage error."""
    if name not in DEVICES:
        raise UsageError(f"--device {name!r} is not allowed; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)
