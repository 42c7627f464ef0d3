"""Per-step weights of the multi-step loss (MSL) of MAML++ (Antoniou et al. 2019, section 4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def msl_weights(steps: int, progress: float) -> list[float]:
    """Importance of the query loss after each inner step, annealed towards the last step.

    At ``progress`` 0 all steps weigh ``1 / steps``; the earlier steps then decay linearly to a
    floor of ``0.03 / steps`` at ``progress`` 1, and the last step takes the rest (MAML++'s
    schedule).
    """
    if steps < 1:
        raise ValueError(f"the multi-step loss needs at least one inner step, got {steps}")
    progress = min(max(progress, 0.0), 1.0)
    floor = 0.03 / steps
    early = [max(1 / steps - progress / steps, floor)] * (steps - 1)
    last = min(1 / steps + progress * (steps - 1) / steps, 1 - (steps - 1) * floor)
    return early + [last]


def step_weights_tensor(weights: Sequence[float] | Tensor | None, steps: int) -> Tensor | None:
    """The multi-step loss's weights (one per inner step) as a float64 tensor, checked."""
    if weights is None:
        return None
    # Kept in float64 until it meets the losses (then their dtype): a float64 model's
    # multi-step loss must not carry float32 rounding of its weights.
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if weights.shape != (steps,):
        raise ValueError(
            f"step_weights has shape {tuple(weights.shape)}; "
            f"expected one weight per inner step: ({steps},)"
        )
    return weights


def weigh(losses: Tensor, weights: Tensor | None) -> Tensor:
    """Per-task meta-loss from (tasks, steps + 1) query losses: the last, or weighted over steps."""
    if weights is None:
        return losses[:, -1]
    return (losses[:, 1:] * weights.to(losses)).sum(dim=1)
