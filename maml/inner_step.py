"""The inner step: one step of SGD on a task loss, the one step every adaptation takes."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

Params = dict[str, Tensor]
StepSizes = Mapping[str, Tensor | float]  # per parameter tensor: a scalar or a same-shape tensor


def gradient(loss: Callable[[Params], Tensor], params: Params, create_graph: bool) -> Params:
    """The gradient of ``loss(params)``; also under ``torch.no_grad()`` (evaluation)."""
    # Under no_grad the parameters become fresh leaves: a view made there may still say
    # requires_grad, yet has no graph to differentiate through.
    tracked = torch.is_grad_enabled()
    with torch.enable_grad():
        params = {
            n: p if tracked and p.requires_grad else p.detach().requires_grad_()
            for n, p in params.items()
        }
        value = loss(params)
        grads = torch.autograd.grad(value, tuple(params.values()), create_graph=create_graph)
    return dict(zip(params, grads, strict=True))


def inner_step(
    loss: Callable[[Params], Tensor], params: Params, step_sizes: StepSizes, create_graph: bool
) -> Params:
    """``params - step_size * grad loss(params)``, tensor by tensor.

    ``create_graph`` keeps the step differentiable to second order (MAML); without it the
    gradient is a constant and only the ``params`` term carries a meta-gradient (first-order
    MAML). With a leading task axis on every tensor and ``loss`` the sum of the tasks' losses,
    one call steps every task on its own gradient.
    """
    grads = gradient(loss, params, create_graph)
    return {n: p - step_sizes[n] * grads[n] for n, p in params.items()}
