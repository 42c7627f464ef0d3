"""Fisher-vector products of the post-adaptation KL in Gauss-Newton form, on episode subsets.

With adapted parameters ``theta_K(theta)`` after K inner steps ``theta_{k+1} = theta_k - lr
grad L_k(theta_k)``, the Hessian of ``KL(theta_K(theta))`` at the sampling parameters is
``J^T F J``: ``F`` the Fisher of the adapted policy, ``J = J_{K-1} ... J_0`` with ``J_k = I - lr
H_k`` (``H_k`` the Hessian of step k's inner loss), because the KL's gradient vanishes there.
Double backprop through the whole adaptation computes the same product, but every product
then runs back through the inner gradients of all the train episodes. Here each factor is a
Hessian-vector product on its own random subset of the episodes (rllab's subsampling of the
Fisher, carried over to the train episodes): the step values stay exact (the sampler's adapted
parameters), the curvature is estimated; TRPO's line search still checks the exact KL on all
valid episodes. ``J_k`` times a vector is a vector-Jacobian product through the core's own inner
step (``maml.inner_step``), which is symmetric. With all episodes the product equals the
double-backprop one (tested).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils._pytree import tree_map

from maml import MAML
from maml.inner_step import Params, StepSizes, inner_step
from maml.run.distributed import ONE_PROCESS, Ranks
from maml_rl.episodes import Episodes
from maml_rl.trpo import flat, unflat

Measure = Callable[..., Tensor]


def subset(episodes: Episodes, fraction: float, generator: torch.Generator) -> Episodes:
    """A random ``fraction`` of each task's episodes (the same rollout indices for every task);
    of its rows of steps where the trainer packed them (``Episodes.packed``)."""
    rollouts = episodes.mask.shape[1]
    keep = max(1, round(fraction * rollouts))
    if keep >= rollouts:
        return episodes
    index = torch.randperm(rollouts, generator=generator)[:keep].to(episodes.mask.device)
    return tree_map(lambda x: x.index_select(1, index), episodes)


Graph = tuple[list[Tensor], list[Tensor]]  # leaves, and outputs differentiable in them


def _step_graph(learner: MAML, params: Params, episodes: Episodes, sizes: StepSizes) -> Graph:
    """Leaves at ``params`` (leading task axis) and every task's inner step from them."""
    leaves = {n: p.detach().requires_grad_() for n, p in params.items()}
    stepped = inner_step(
        lambda p: learner.task_losses(p, episodes).sum(), leaves, sizes, create_graph=True
    )
    return list(leaves.values()), list(stepped.values())


def _kl_graph(learner: MAML, kl: Callable, params: Params, episodes: Episodes) -> Graph:
    """Leaves at ``params`` and the gradient of every task's KL there, differentiable again."""
    leaves = [p.detach().requires_grad_() for p in params.values()]
    value = learner.task_losses(dict(zip(params, leaves, strict=True)), episodes, kl).sum()
    return leaves, list(torch.autograd.grad(value, leaves, create_graph=True))


def _vjp(graph: Graph, vector: list[Tensor]) -> list[Tensor]:
    """Each task's outputs' Jacobian (transposed) times its own slice of ``vector``."""
    leaves, outputs = graph
    live = [i for i, out in enumerate(outputs) if out.requires_grad]
    return list(
        torch.autograd.grad(
            [outputs[i] for i in live],
            leaves,
            grad_outputs=[vector[i] for i in live],
            retain_graph=True,
            materialize_grads=True,
        )
    )


def gauss_newton_fvp(
    learner: MAML,
    train: list[Episodes],
    valid: Episodes,
    measure: Measure,
    fraction: float,
    damping: float,
    generator: torch.Generator,
    adapted: list[Params],
    ranks: Ranks = ONE_PROCESS,
    total_tasks: int | None = None,
) -> Callable[[Tensor], Tensor]:
    """``v -> (mean over tasks of J^T F J + damping I) v`` over the learner's meta-parameters.

    ``train[k]`` are the episodes of inner step k, ``valid`` those sampled after adaptation,
    all with a leading task axis; ``measure(forward, episodes)`` returns ``[surrogate, kl]``;
    ``adapted[k]`` are every task's parameters after inner step k + 1 (as the sampler ran them).
    Each Hessian-vector product uses ``fraction`` of each task's episodes: ``J`` then appears
    twice with the same noise, and the product overestimates the curvature by
    ``lr^2 E[dH^T F dH]`` (``dH`` the subsample's error in the inner Hessian).
    Under torchrun the episodes are this rank's block of ``total_tasks`` tasks
    (``ranks.share``); every rank draws the same subsets of the whole batch and the products
    are summed over the ranks.
    """
    if any(p.requires_grad for p in learner.inner_lr.parameters()):
        raise ValueError("the Gauss-Newton Fisher needs fixed inner step sizes, not learned ones")
    if len(adapted) != len(train):
        raise ValueError(f"adapted holds {len(adapted)} steps' parameters for {len(train)} steps")
    total = total_tasks or valid.mask.shape[0]
    tasks = valid.mask.shape[0]  # this rank's
    meta = {n: p.detach().expand(tasks, *p.shape) for n, p in learner.meta_params().items()}
    subsets = [subset(e, fraction, generator) for e in train]
    valid_subset = subset(valid, fraction, generator)

    def kl(forward: Callable, episodes: Episodes) -> Tensor:
        return measure(forward, episodes)[1]

    # The graphs of each inner step on its subset at that step's exact parameters, and of the
    # KL's gradient at the adapted parameters: built once, reused by every product of the
    # conjugate-gradient solve. First-order MAML takes J = I.
    starts = [meta, *adapted[:-1]]
    steps = [
        _step_graph(learner, starts[k], subsets[k], learner.inner_lr.at_step(k))
        for k in range(len(train))
        if not learner.first_order
    ]
    kl_graph = _kl_graph(learner, kl, adapted[-1] if adapted else meta, valid_subset)
    shapes = list(learner.meta_params().values())

    def product(vector: Tensor) -> Tensor:
        u = [x.expand(tasks, *x.shape) for x in unflat(vector, shapes)]
        for graph in steps:  # J v (each J_k is symmetric)
            u = _vjp(graph, u)
        w = _vjp(kl_graph, u)  # F J v
        for graph in reversed(steps):  # J^T F J v
            w = _vjp(graph, w)
        summed = flat([x.sum(0) for x in w])
        ranks.sum([summed])
        return summed / total + damping * vector

    return product
