"""Per-step weights of the multi-step loss (MSL) of MAML++ (Antoniou et al. 2019, section 4)."""

from __future__ import annotations


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
