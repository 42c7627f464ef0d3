"""The linear feature baseline of the MAML code (from rllab), a ridge regression per task."""

from __future__ import annotations

import torch
from torch import Tensor

REGULARISATION = 1e-5  # the first ridge coefficient tried; x10 until the solve is finite (rllab)


def features(observations: Tensor, mask: Tensor, steps: Tensor | None = None) -> Tensor:
    """Observations, their squares, time, time^2, time^3 and a constant: (..., H, 2 * obs + 4).

    Observations are clipped to [-10, 10] and time is the step's index in its episode / 100, as
    in rllab; ``steps`` gives the indices (shaped as ``mask``) where the rows are not episodes.
    """
    obs = observations.clamp(-10.0, 10.0)
    if steps is None:
        steps = torch.arange(obs.shape[-2], device=obs.device).expand(*obs.shape[:-1])
    time = (steps.to(obs.dtype) / 100.0).unsqueeze(-1)
    phi = torch.cat([obs, obs**2, time, time**2, time**3, torch.ones_like(time)], dim=-1)
    return phi * mask.unsqueeze(-1)


def fit_linear_baseline(
    observations: Tensor, returns: Tensor, mask: Tensor, steps: Tensor | None = None
) -> Tensor:
    """Per-task weights of the baseline: (tasks, features).

    ``observations`` (tasks, rollouts, H, obs), ``returns`` and ``mask`` (tasks, rollouts, H). Each
    task gets ``argmin |phi w - G|^2 + c |w|^2`` over its own episodes' valid steps, in float64.
    ``steps``: each step's index in its episode, where the rows are not episodes (``features``).
    """
    phi = features(observations.double(), mask.double(), steps).flatten(1, 2)  # (T, R*H, F)
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


def baseline_values(
    observations: Tensor, mask: Tensor, weights: Tensor, steps: Tensor | None = None
) -> Tensor:
    """The fitted baseline's value of every step: (tasks, rollouts, H)."""
    phi = features(observations.double(), mask.double(), steps)
    values = torch.einsum("trhf,tf->trh", phi, weights)
    return values.to(observations.dtype)
