"""Task batches: any pytree of tensors with a leading task axis, and support data that changes
from one inner step to the next (fresh rollouts per step in RL)."""

from __future__ import annotations

from typing import Any

from torch.utils._pytree import register_pytree_node, tree_leaves, tree_map


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


def task_count(*batches: Any) -> int:
    """The length of the leading task axis the ``batches`` (``None`` for none) share."""
    leaves = [x for batch in batches if batch is not None for x in tree_leaves(batch)]
    if not leaves:
        raise ValueError("support and query hold no tensors")
    counts = {tuple(x.shape[:1]) for x in leaves}
    if len(counts) != 1 or counts == {()}:
        shapes = [tuple(x.shape) for x in leaves]
        raise ValueError(
            f"support, query and parameters must share a leading task axis; got shapes {shapes}"
        )
    return leaves[0].shape[0]


def task_slice(batch: Any, which: slice) -> Any:
    """The tasks ``which`` of a batch (or ``None``)."""
    return None if batch is None else tree_map(lambda x: x[which], batch)


def task_at(batch: Any, t: int) -> Any:
    """Task ``t`` of a batch, without its task axis."""
    return tree_map(lambda x: x[t], batch)
