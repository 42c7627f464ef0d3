"""Support data that changes from one inner step to the next (fresh rollouts per step in RL)."""

from __future__ import annotations

from typing import Any

from torch.utils._pytree import register_pytree_node


class PerStep(tuple):
    """One support batch per inner step: step k adapts on ``batches[k]``.

    MAML-RL samples new episodes with the adapted policy after every inner step; pass them as
    ``PerStep([episodes_0, episodes_1, ...])`` wherever a support batch goes. It is a pytree, so
    the core slices tasks out of it like any batch.
    """

    def __new__(cls, batches) -> PerStep:
        batches = tuple(batches)
        if not batches:
            raise ValueError("PerStep needs at least one support batch")
        return super().__new__(cls, batches)


register_pytree_node(PerStep, lambda p: (list(p), None), lambda children, _: PerStep(children))


def support_at(support: Any, step: int) -> Any:
    """The support batch of inner step ``step`` (0-based)."""
    if not isinstance(support, PerStep):
        return support
    if step >= len(support):
        raise ValueError(
            f"PerStep holds {len(support)} support batch(es); inner step {step + 1} needs one "
            "per step"
        )
    return support[step]
