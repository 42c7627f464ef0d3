"""The pieces of a TRPO step, independent of MAML: flat parameter vectors, conjugate gradient,
and a backtracking line search under a KL constraint (Schulman et al. 2015). The Fisher-vector
products of the post-adaptation KL are in ``maml_rl.fisher``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflat(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    out, start = [], 0
    for t in like:
        out.append(vector[start : start + t.numel()].view_as(t))
        start += t.numel()
    return out


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10, tolerance: float = 1e-10
) -> tuple[Tensor, Tensor]:
    """Approximately solve ``A x = b``, ``A`` symmetric positive-definite, given as ``matvec``.

    Returns ``x`` and its residual ``b - A x``, so that ``x @ A @ x = x @ (b - residual)`` costs
    no further product with ``A``.
    """
    x = torch.zeros_like(b)
    residual = b.clone()
    direction = b.clone()
    rr = residual @ residual
    for _ in range(iterations):
        if rr <= tolerance:
            break
        a_direction = matvec(direction)
        alpha = rr / (direction @ a_direction)
        x = x + alpha * direction
        residual = residual - alpha * a_direction
        rr_new = residual @ residual
        direction = residual + (rr_new / rr) * direction
        rr = rr_new
    return x, residual


@dataclass
class LineSearchResult:
    accepted: bool
    steps: int  # backtracking steps taken (0: the full step)
    fraction: float  # of the full step kept (0 when rejected)
    improvement: float
    kl: float


def line_search(
    evaluate: Callable[[float], tuple[float, float]],
    max_kl: float,
    steps: int = 15,
    ratio: float = 0.8,
    start: float | None = None,
) -> LineSearchResult:
    """Backtrack along a step until the surrogate improves with KL <= ``max_kl``.

    ``evaluate(fraction)`` applies ``fraction`` of the full step and returns (surrogate loss, KL);
    the search starts from the loss ``start``, ``evaluate(0.0)``'s unless given. The caller
    restores the parameters when the result is not accepted.
    """
    if start is None:
        start, _ = evaluate(0.0)
    fraction = 1.0
    for step in range(steps):
        loss, kl = evaluate(fraction)
        if loss < start and kl <= max_kl:
            return LineSearchResult(True, step, fraction, start - loss, kl)
        fraction *= ratio
    return LineSearchResult(False, steps, 0.0, 0.0, 0.0)
