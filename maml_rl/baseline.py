"""The linear feature baseline of the MAML code (from rllab), a ridge regression per task."""

from __future__ import annotations

import torch
from torch import Tensor

REGULARISATION = 1e-5  # the first ridge coefficient tried; x10 until the solve is finite (rllab)


def features(observations: Tensor, mask: Tensor, steps: Tensor | None = None) -> Tensor:
    """Observations, their squares, time, time^2, time^3 and a constant: (..., H, 2 * obs + 4),
    in float64.

    Observations are clipped to [-10, 10] and time is the step's index in its episode / 100, as
    in rllab; ``steps`` gives the indices (shaped as ``mask``) where the rows are not episodes.
    """
    *lead, n = observations.shape
    # Written in place into one buffer: for an Ant's batch it is hundreds of MB, and each
    # temporary of that size costs as much as the fit's product.
    phi = torch.empty(*lead, 2 * n + 4, dtype=torch.float64, device=observations.device)
    phi[..., :n] = observations.clamp(-10.0, 10.0)
    torch.square(phi[..., :n], out=phi[..., n : 2 * n])
    if steps is None:
        steps = torch.arange(lead[-1], device=observations.device).expand(*lead)
    time = steps.to(torch.float64) / 100.0
    phi[..., 2 * n], phi[..., 2 * n + 1], phi[..., 2 * n + 2] = time, time**2, time**3
    phi[..., 2 * n + 3] = 1.0
    return phi.mul_(mask.to(torch.float64).unsqueeze(-1))


def fit_linear_baseline(
    observations: Tensor, returns: Tensor, mask: Tensor, steps: Tensor | None = None
) -> Tensor:
    """Per-task weights of the baseline: (tasks, features).

    ``observations`` (tasks, rollouts, H, obs), ``returns`` and ``mask`` (tasks, rollouts, H). Each
    task gets ``argmin |phi w - G|^2 + c |w|^2`` over its own episodes' valid steps, in float64.
    ``steps``: each step's index in its episode, where the rows are not episodes (``features``).
    """
    return _fit(features(observations, mask, steps), returns, mask)


def fitted_baseline(
    observations: Tensor, returns: Tensor, mask: Tensor, steps: Tensor | None = None
) -> Tensor:
    """The baseline fitted per task (``fit_linear_baseline``) and its value at every step, the
    features built once: (tasks, rollouts, H)."""
    phi = features(observations, mask, steps)
    return _values(phi, _fit(phi, returns, mask)).to(observations.dtype)


def _fit(phi: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    phi = phi.flatten(1, 2)  # (T, R*H, F)
    targets = (returns.double() * mask.double()).flatten(1, 2)
    gram = phi.transpose(1, 2) @ phi
    rhs = (phi.transpose(1, 2) @ targets.unsqueeze(-1)).squeeze(-1)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    coefficient = REGULARISATION
    for _ in range(5):  # the system is symmetric positive definite: Cholesky
        factor, info = torch.linalg.cholesky_ex(gram + coefficient * eye)
        if not info.any():
            weights = torch.cholesky_solve(rhs.unsqueeze(-1), factor).squeeze(-1)
            if torch.isfinite(weights).all():
                return weights
        coefficient *= 10
    raise FloatingPointError("the linear baseline fit is not finite even with ridge 0.1")


def _values(phi: Tensor, weights: Tensor) -> Tensor:
    return torch.einsum("trhf,tf->trh", phi, weights)


def baseline_values(
    observations: Tensor, mask: Tensor, weights: Tensor, steps: Tensor | None = None
) -> Tensor:
    """The fitted baseline's value of every step: (tasks, rollouts, H)."""
    return _values(features(observations, mask, steps), weights).to(observations.dtype)
