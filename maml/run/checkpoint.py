"""Checkpoints: atomic writes, and loads that run no code (``weights_only=True``)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from maml.run.errors import UsageError
from maml.run.folder import write_atomic

FORMAT = "maml-toolkit checkpoint v1"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors and plain values) so that ``path`` is always a whole checkpoint;
    a failed write raises :class:`maml.run.folder.WriteError` and keeps the one there was."""
    # Serialised in memory first: a failing file then reports its own cause (a full disk), not
    # torch's archive writer's ("unexpected pos").
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    write_atomic(path, buffer.getbuffer())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, or raise a clear UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(f"checkpoint {path} is corrupt or not a checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UsageError(f"checkpoint {path} was not written by this toolkit ({FORMAT} expected)")
    return state
