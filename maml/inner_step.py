"""The differentiable inner loop: gradients of a task loss and SGD steps on parameter dicts."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

Params = dict[str, Tensor]
LossOfParams = Callable[[Params], Tensor]
GradFn = Callable[[LossOfParams, Params, bool], Params]


def func_grad(loss_fn: LossOfParams, params: Params, create_graph: bool) -> Params:
    """Gradient with `torch.func.grad`: works inside `vmap` (the batched path)."""
    if create_graph:
        return torch.func.grad(loss_fn)(params)
    # Under an outer no_grad the inner gradient is still computed, but the outer graph does not
    # record it: first-order MAML keeps no second-order bookkeeping.
    with torch.no_grad():
        grads = torch.func.grad(loss_fn)(params)
    return {name: g.detach() for name, g in grads.items()}


def autograd_grad(loss_fn: LossOfParams, params: Params, create_graph: bool) -> Params:
    """Gradient with `torch.autograd.grad`; also under `torch.no_grad()` (evaluation)."""
    # Under no_grad (evaluation) the parameters become fresh leaves: a view made there may still
    # say requires_grad, yet has no graph to differentiate through.
    tracked = torch.is_grad_enabled()
    with torch.enable_grad():
        params = {
            n: p if tracked and p.requires_grad else p.detach().requires_grad_()
            for n, p in params.items()
        }
        loss = loss_fn(params)
        grads = torch.autograd.grad(loss, tuple(params.values()), create_graph=create_graph)
    return dict(zip(params, grads, strict=True))


def sgd_step(params: Params, grads: Params, lrs: Mapping[str, Tensor | float]) -> Params:
    """One SGD step ``p - lr * g``; ``lrs`` maps names to scalars or same-shape tensors."""
    return {name: p - lrs[name] * grads[name] for name, p in params.items()}
